-- Lua allocations per call, counted by bench/alloc_count.c's allocator (allocs()): N
-- sequential calls, then a batch of N tasks, against the sandbox, after a warm-up of each
-- (so that one-time costs, the handles, the signature of the second, are not counted; the
-- batch's own tables are, spread over its tasks).
--
--   alloc_count bench/allocs.lua URL KEY SECRET N
--
-- Prints "allocs_result sequential_per_call seq_bytes batch_per_task batch_bytes".
local itnio = require "itnio"
local allocs = allocs   -- luacheck: ignore (bench/alloc_count.c gives it)
local new_task = require "task"

local url, key, secret, n = arg[1], arg[2], arg[3], tonumber(arg[4])
assert(url and key and secret and n, "usage: allocs.lua URL KEY SECRET N")
local client = assert(itnio.new{ api_key = key, api_secret = secret, base_url = url, max_retries = 0 })
local task = new_task()
local tasks = {}
for i = 1, n do tasks[i] = task end

local function count(f)
  collectgarbage("stop")   -- a collection frees, never allocates; stopped, nothing moves
  local a0, b0 = allocs()
  f()
  local a1, b1 = allocs()
  collectgarbage("restart")
  collectgarbage()
  return (a1 - a0) / n, (b1 - b0) / n
end

for _ = 1, 50 do assert(client:recall_update(task)) end
local seq, seq_bytes = count(function()
  for _ = 1, n do assert(client:recall_update(task)) end
end)
client:batch_recall_update({ task, task, task, task }, { concurrency = 2 })
local batch, batch_bytes = count(function()
  local results = client:batch_recall_update(tasks, { concurrency = 16 })
  assert(results[n].res, tostring(results[n].err))
end)
print(("allocs_result %.1f %.0f %.1f %.0f"):format(seq, seq_bytes, batch, batch_bytes))
