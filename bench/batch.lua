-- Concurrent batch against the sandbox (Lua 5.4 or LuaJIT): N copies of the typical task sent
-- through the client's batch API at concurrency C (with $BENCH_STORE, a store's URL, each
-- task's state asked of it).
--
--   batch.lua BASE_URL API_KEY API_SECRET N C
--
-- Prints "batch_result requests ok failed seconds" (wall time on the core's monotonic clock,
-- around the one measured batch_recall_update call) and, on stderr, the first failure. The
-- sandbox also counts the warm-up's requests (bench/run subtracts them).
local core = require "itnio.core"
local new_task = require "task"

local base_url, key, secret = arg[1], arg[2], arg[3]
local n, c = tonumber(arg[4]), tonumber(arg[5])
assert(base_url and key and secret and n and c, "usage: batch.lua BASE_URL API_KEY API_SECRET N C")

local store = os.getenv("BENCH_STORE")
if store == "" then store = nil end

local function new_client()
  return assert(require("itnio").new{ api_key = key, api_secret = secret,
    base_url = base_url, max_retries = 0,   -- a retry would hide a failure
    store = store })   -- (with one: the state in the store, one round trip a task)
end

local task = new_task()
local tasks = {}
for i = 1, n do tasks[i] = task end   -- the same table n times: the client must not change it

-- A warm-up batch on a client of its own, closed after: the process's heap reaches the size
-- a running host has (the first batch of a fresh process pays for touching new memory, which
-- a long-lived host does not), while the measured client starts with no connection, as the
-- C peer does.
local warm, warm_tasks = new_client(), {}
for i = 1, math.min(n, 1000) do warm_tasks[i] = task end
warm:batch_recall_update(warm_tasks, { concurrency = c })
warm:close()
collectgarbage()

local client = new_client()

local t0 = core.now()
local results = client:batch_recall_update(tasks, { concurrency = c })
local seconds = core.now() - t0

local ok, failed, first_failure = 0, 0, nil
for i = 1, n do
  local r = results[i]
  if type(r) == "table" and r.res and r.res.code == 0 then
    ok = ok + 1
  else
    failed = failed + 1
    first_failure = first_failure or ("task " .. i .. ": " .. tostring(type(r) == "table" and r.err or r))
  end
end
client:close()
print(("batch_result %d %d %d %.6f"):format(ok + failed, ok, failed, seconds))
if first_failure then io.stderr:write("batch: first failure: ", first_failure, "\n") end
