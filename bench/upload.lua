-- The peak memory of recall.upload_file for a file of MB megabytes (random bytes), in a fresh
-- process, under the Lua that runs it: what it takes over the file's size.
--
--   upload.lua FILE
--
-- Prints "upload_result file_bytes text_bytes hwm_before_kb hwm_after_kb" (VmHWM, kB).
local function hwm()
  local f = assert(io.open("/proc/self/status", "r"))
  local v = f:read("*a"):match("VmHWM:%s*(%d+) kB")
  f:close()
  return tonumber(v)
end

local recall = require "itnio.recall"
require "itnio.core"
local path = assert(arg[1], "usage: upload.lua FILE")
local size = assert(io.open(path, "rb")):seek("end")
collectgarbage("collect")
local before = hwm()
local node = assert(recall.upload_file(path, "big-greeting.wav", { max_bytes = size }))
local after = hwm()
print(("upload_result %d %d %d %d"):format(size, #node.baseFile, before, after))
