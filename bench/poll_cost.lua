-- What jobs in flight cost while they wait, under Lua 5.4: 1000 jobs started with
-- client:start_recall_update against a loopback listener that never accepts (the kernel
-- completes the handshakes into its backlog and takes the requests; no answer ever comes),
-- then the CPU time of client:poll(0) and the RSS each job holds.
--
--   poll_cost.lua BASE_URL API_KEY API_SECRET
--
-- BASE_URL is only checked for its form: the jobs go to the listener opened here. Prints
-- "poll_cost_result us_per_poll kb_per_job jobs_running": the median CPU µs (os.clock) of
-- 200 poll(0) calls, VmRSS growth over the jobs' creation (and their first polls) per job in
-- kB, and what the last poll(0) returned.
local socket = require "socket"
local new_task = require "task"

local base_url, key, secret = arg[1], arg[2], arg[3]
assert(base_url and key and secret, "usage: poll_cost.lua BASE_URL API_KEY API_SECRET")
assert(base_url:match("^https?://"), "BASE_URL must be an http(s) URL")
local JOBS, POLLS = 1000, 200

-- socket.bind would listen with a backlog of 32; with one of JOBS every connection gets in
-- and every job is at the same stage: request sent, waiting for the answer.
local listener = assert(socket.tcp())
assert(listener:bind("127.0.0.1", 0))
assert(listener:listen(JOBS + 24))
local _, port = listener:getsockname()

local function rss_kb()
  local f = assert(io.open("/proc/self/status", "r"))
  local v = f:read("*a"):match("VmRSS:%s*(%d+) kB")
  f:close()
  return tonumber(v)
end

local client = assert(require("itnio").new{ api_key = key, api_secret = secret,
  base_url = "http://127.0.0.1:" .. port, timeout = 60, connect_timeout = 60, max_retries = 0 })
assert(client.start_recall_update and client.poll, "this itnio has no jobs API (start_recall_update, poll)")
local task = new_task()

-- Jobs that start running take their memory in the first polls (connect, send): let them
-- settle before the second reading.
local function settle()
  local running
  for _ = 1, 50 do
    running = client:poll(0)
    socket.sleep(0.005)
  end
  return running
end

collectgarbage("collect")
local rss0 = rss_kb()
local jobs = {}
for i = 1, JOBS do
  jobs[i] = assert(client:start_recall_update(task))
end
local running = settle()
collectgarbage("collect")
local rss1 = rss_kb()

local times = {}
for i = 1, POLLS do
  local c0 = os.clock()
  running = client:poll(0)
  times[i] = os.clock() - c0
end
assert(#jobs == JOBS)   -- held until here: a collected job might stop
table.sort(times)
local median = times[(POLLS + 1) // 2]

client:close()
listener:close()
print(("poll_cost_result %.1f %.2f %d"):format(median * 1e6, (rss1 - rss0) / JOBS, running))
