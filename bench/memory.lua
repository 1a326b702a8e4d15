-- One 10 MB baseFile (a source=2 node) encoded once, in a fresh process: encode time and
-- peak memory. Usage: memory.lua ours|cjson [MB]
--
-- Prints "payload_bytes body_bytes seconds (median of up to 6 encodes) hwm_before hwm_payload
-- hwm_peak rss_payload first_seconds"
-- (kB from /proc/self/status). Building the payload leaves a transient copy behind
-- (string.rep builds in a buffer, then copies it into the string), which would hide up
-- to one payload of the encoder's own use; so after building, garbage is collected and
-- the peak is reset (echo 5 > /proc/self/clear_refs) when the kernel allows it, and
-- rss_payload is the baseline the encoder's peak is measured from.
local mode, mb = arg[1], tonumber(arg[2] or "10")
assert(mode == "ours" or mode == "cjson", "usage: memory.lua ours|cjson [MB]")

local function status(field)
  local f = assert(io.open("/proc/self/status", "r"))
  local v = f:read("*a"):match(field .. ":%s*(%d+) kB")
  f:close()
  return tonumber(v)
end

local encode
if mode == "ours" then
  local core_encode = require("itnio.core").encode
  encode = function(t) return core_encode("recall_update", t) end
else
  encode = require("cjson").encode
end
collectgarbage("collect")
local hwm_before = status("VmHWM")

local payload = string.rep("QUJD", mb * 262144)   -- valid base64, 4 bytes a step
local task = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {
  { source = 2, uploadName = "big-greeting.wav", baseFile = payload, hangUpSms = 0, toSeat = 0 } } }
collectgarbage("collect")
local hwm_payload = status("VmHWM")
local f = io.open("/proc/self/clear_refs", "w")
if f then f:write("5"); f:close() end
local rss_payload = status("VmHWM")   -- after a reset, the current RSS; else the old peak

local t0 = os.clock()
assert(encode(task))
local first = os.clock() - t0
local times = { first }
local hwm_peak = status("VmHWM")

-- The peak is known; a few more encodes (at most 2 s of them) steady the time.
local body
while #times < 6 and os.clock() - t0 < 2 do
  local t1 = os.clock()
  body = assert(encode(task))
  times[#times + 1] = os.clock() - t1
end
table.sort(times)
print(("%d %d %.6f %d %d %d %d %.6f"):format(#payload, #body, times[math.floor((#times + 1) / 2)],
  hwm_before, hwm_payload, hwm_peak, rss_payload, first))
