-- Regression: with no file descriptor left, the first job raised "epoll_create1 failed (Too
-- many open files)" (or, when itnio.internal.curl had not been loaded yet, "module ... not
-- found"), and the job count stayed at 1 for ever, so `while c:poll(0) > 0` never ended.
-- Now start_recall_update returns nil, TransportError, the count stays true, and jobs work
-- again once descriptors are free. Runs in a child Lua with a low descriptor limit.
local sandbox = require "support.sandbox"
local hostile = require "support.hostile"

local core    = require "itnio.core"
local LUA = sandbox.shell_quote(require("support.shell").lua)
-- The child loads the core the runner loaded (make test-poll runs this with the poll(2) build).
local CPATH = hostile.core_cpath()

local SCRIPT = [[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = CPATH .. ";" .. package.cpath
local itnio = require "itnio"
local T = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }
local c = assert(itnio.new{ api_key = "sandbox-key", api_secret = "sandbox-secret", base_url = "URL",
                            max_retries = 0 })
local held = {}
while true do
  local f = io.open("/dev/null", "rb")
  if not f then break end
  held[#held + 1] = f
end
local function say(...) io.stdout:write(table.concat({ ... }, " "), "\n") end
local job, err = c:start_recall_update(T)
if job then   -- poll(2) needs no descriptor of its own: the job starts, and fails to connect
  while c:poll(0.05) > 0 do end
  err = select(2, job:result())
  job = nil
end
say("start", tostring(job), err and err.kind or "-", err and tostring(err.reason) or "-")
say("message", err and err.message or "-")
say("count", c:poll(0), c:poll(0.01))
local results = c:batch_recall_update({ T, T })
say("batch", #results, results[1].err and results[1].err.kind or "ok",]]
  .. [[ results[2].err and results[2].err.kind or "ok")
local res, berr = c:recall_update(T)
say("blocking", res and "ok" or berr.kind)
for _ = 1, 16 do table.remove(held):close() end
local job2, err2 = c:start_recall_update(T)
assert(job2, tostring(err2))
local t0 = os.time()
while c:poll(0.05) > 0 and os.time() - t0 < 10 do end
say("after", job2:result() and "updated" or tostring(select(2, job2:result())))
]]

describe("jobs with no file descriptor left", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  it("start returns nil, TransportError; the count stays true; "
    .. "jobs work once descriptors are back", function()
    local script = SCRIPT:gsub("CPATH", string.format("%q", CPATH)):gsub("URL", sb.http_url)
    local out, ok = sandbox.run("cd " .. sandbox.shell_quote(sandbox.root) .. " && "
      .. hostile.fd_limit(32) .. "timeout 30 "
      .. LUA .. " -e " .. sandbox.shell_quote(script))
    assert.is_true(ok, out)
    if core.EVENTS == "epoll" then
      assert.truthy(out:find("start nil TransportError other\n", 1, true), out)
      assert.truthy(out:find("message could not start a job: itnio: the event backend (epoll)"
        .. " could not open (Too many open files)", 1, true), out)
    else
      assert.truthy(out:find("start nil TransportError connect\n", 1, true), out)
    end
    assert.truthy(out:find("count 0 0\n", 1, true), out)
    assert.truthy(out:find("batch 2 TransportError TransportError\n", 1, true), out)
    assert.truthy(out:find("blocking TransportError\n", 1, true), out)
    assert.truthy(out:find("after updated\n", 1, true), out)
  end)
end)
