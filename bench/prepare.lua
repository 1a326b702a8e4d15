-- Writes the task's body (made by our core) to BODY_FILE and prints "TIMESTAMP SIGN" for
-- now, for the peers that send one fixed request (wrk). Usage: prepare.lua BODY_FILE KEY SECRET
local core = require "itnio.core"
local body = assert(core.encode("recall_update", require("task")()))
local f = assert(io.open(assert(arg[1], "usage: prepare.lua BODY_FILE KEY SECRET"), "wb"))
f:write(body)
f:close()
local ts = tostring(os.time())
print(ts .. " " .. core.sign(assert(arg[2]), assert(arg[3]), ts))
