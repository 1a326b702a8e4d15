-- Sequential requests against the sandbox, one at a time, under Lua 5.4.
--
--   sequential.lua ours|ours_rate|ours_store|luasocket BASE_URL API_KEY API_SECRET COUNT MAX_SECONDS
--
-- ours: one itnio client (default curl transport, so one keep-alive connection), calling
-- recall_update COUNT times: each call validates, encodes and signs anew. ours_rate: the same
-- with a rate limit too high to wait for (each attempt asks the client's own state);
-- ours_store: that, with the state in the store at $BENCH_STORE (one round trip an attempt).
-- luasocket: socket.http.request with the same body and one set of signed headers made at
-- start, as a hand-written client would; socket.http opens a new connection per request.
-- Stops early past MAX_SECONDS. Prints "requests ok failed seconds" and, on stderr, the
-- first failure.
local core = require "itnio.core"
local new_task = require "task"

local mode, base_url, key, secret = arg[1], arg[2], arg[3], arg[4]
local count, max_seconds = tonumber(arg[5]), tonumber(arg[6])
assert(mode and base_url and key and secret and count and max_seconds,
  "usage: sequential.lua ours|ours_rate|ours_store|luasocket BASE_URL API_KEY API_SECRET COUNT MAX_SECONDS")

local now = core.now   -- monotonic wall clock: here the waiting is the point
local task = new_task()
local call, first_failure

if mode == "ours" or mode == "ours_rate" or mode == "ours_store" then
  local client = assert(require("itnio").new{ api_key = key, api_secret = secret,
    base_url = base_url, max_retries = 0,   -- a retry would hide a failure
    rate = mode ~= "ours" and 1e6 or nil,   -- (a rate no call waits for: the state is asked)
    store = mode == "ours_store" and assert(os.getenv("BENCH_STORE"), "BENCH_STORE") or nil })
  call = function()
    local res, err = client:recall_update(task)
    return res ~= nil, err
  end
elseif mode == "luasocket" then
  local http, ltn12, cjson = require "socket.http", require "ltn12", require "cjson"
  local body = assert(core.encode("recall_update", task))
  local ts = tostring(os.time())
  local headers = { ["Content-Type"] = "application/json;charset=UTF-8", ["Api-Key"] = key,
    Timestamp = ts, Sign = core.sign(key, secret, ts), ["Content-Length"] = tostring(#body) }
  local url = base_url .. "/voice/recallFlow/update"
  call = function()
    local out = {}
    local ok, status = http.request{ url = url, method = "POST", headers = headers,
      source = ltn12.source.string(body), sink = ltn12.sink.table(out) }
    if not ok then return false, status end
    local answer = cjson.decode(table.concat(out))
    return status == 200 and answer.code == 0, "HTTP " .. tostring(status) .. " " .. table.concat(out)
  end
else
  error("mode must be ours, ours_rate, ours_store or luasocket")
end

local ok, failed = 0, 0
local t0 = now()
for _ = 1, count do
  local good, err = call()
  if good then ok = ok + 1 else
    failed = failed + 1
    first_failure = first_failure or tostring(err)
  end
  if now() - t0 > max_seconds then break end
end
local seconds = now() - t0
print(("%d %d %d %.6f"):format(ok + failed, ok, failed, seconds))
if first_failure then io.stderr:write(mode, ": first failure: ", first_failure, "\n") end
