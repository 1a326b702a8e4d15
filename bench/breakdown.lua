-- Where a batch task's CPU time goes (Lua 5.4 or LuaJIT): the same N tasks at concurrency C,
-- sent three ways, each layer adding one part of the client's work to the one before:
--
--   transport   a Lua loop on the core's Multi, every task's body written once beforehand
--               (m:add with the body by reference; the headers of the current second)
--   +encoder    the same loop, each body validated and written into its transfer (m:add_task)
--   +client     the client's own batch_recall_update (jobs, results, retries policy, events)
--
--   breakdown.lua BASE_URL API_KEY API_SECRET N C REPS
--
-- Prints "breakdown_result LAYER cpu_us added_us" per layer: this process's CPU time (os.clock:
-- user and system) per task, the median of REPS reps, the layers interleaved rep by rep, after
-- a warm-up of each; added_us is the median, rep by rep, of what the layer adds to the one
-- before it (a shared machine's speed moves between reps; within one it mostly holds). Every
-- answer must be a success; anything else stops the run.
local core = require "itnio.core"
local call = require "itnio.internal.call"
local secrets = require "itnio.internal.secrets"
local new_task = require "task"

local base_url, key, secret = arg[1], arg[2], arg[3]
local n, c, reps = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6])
assert(base_url and key and secret and n and c and reps,
       "usage: breakdown.lua BASE_URL API_KEY API_SECRET N C REPS")

local client = assert(require("itnio").new{ api_key = key, api_secret = secret,
  base_url = base_url, max_retries = 0 })
local url = base_url .. "/voice/recallFlow/update"
local task = new_task()
local tasks = {}
for i = 1, n do tasks[i] = task end
local body = assert(core.encode("recall_update", task))
local m = core.multi_new{ fast = true }

-- The loop both Lua layers share: keep c transfers running, take each as it ends.
local function loop(add)
  local started, ended = 0, 0
  while ended < n do
    while started < n and started - ended < c do
      started = started + 1
      add(secrets.signature(client, call.epoch_second(client)).lines)
    end
    m:perform()
    local id = m:next_done()
    if not id then
      m:wait(1)
    else
      while id do
        local ans, fail = m:take(id)
        if not (ans and ans.plain) then
          error("not a plain success: " .. tostring(ans and ans.status) .. " "
            .. tostring(fail and fail.message))
        end
        ended = ended + 1
        id = m:next_done()
      end
    end
  end
end

local layers = {
  { "transport", function()
      loop(function(lines) m:add("POST", url, lines, body, 10, 3) end)
    end },
  { "+encoder", function()
      loop(function(lines)
        assert(m:add_task("POST", url, lines, task, 10, 3, "recall_update", false))
      end)
    end },
  { "+client", function()
      local results = client:batch_recall_update(tasks, { concurrency = c })
      for i = 1, n do
        if not results[i].res then error("task " .. i .. ": " .. tostring(results[i].err)) end
      end
    end },
}

local samples, added = {}, {}
for _, l in ipairs(layers) do l[2](); samples[l[1]], added[l[1]] = {}, {} end   -- warm-up
collectgarbage()
for _ = 1, reps do
  local before
  for _, l in ipairs(layers) do
    collectgarbage()
    local t0 = os.clock()
    l[2]()
    local us = (os.clock() - t0) / n * 1e6
    table.insert(samples[l[1]], us)
    table.insert(added[l[1]], before and us - before or 0)
    before = us
  end
end
local function median(s)
  table.sort(s)
  return s[math.floor((#s + 1) / 2)]
end
for _, l in ipairs(layers) do
  print(("breakdown_result %s %.2f %.2f"):format(l[1], median(samples[l[1]]), median(added[l[1]])))
end
