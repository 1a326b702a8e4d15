-- Run by spec/property/jobs_spec.lua in a child Lua under a low descriptor limit (ulimit -n):
-- generated scenarios of jobs and batches on the multi handle against a sandbox, while the
-- script takes every free file descriptor now and then and gives them back. Holds: start
-- returns a job or nil, TransportError (never raises); poll never raises and its count is
-- the number of jobs not done; every job ends, once; a batch returns one result per task.
--   lua spec/support/fd_scenarios.lua BASE_URL SEED CASES CPATH   -> "N scenarios held", exit 0
-- (CPATH: where the runner found its core, so that the child loads the same build.)
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = arg[4] .. ";" .. package.cpath
local itnio   = require "itnio"
local answers = require "support.answers"

local url, seed, cases = arg[1], tonumber(arg[2]), tonumber(arg[3])
local gen = answers.new(seed, "x")
local T = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }

local held = {}
local function exhaust()
  while true do
    local f = io.open("/dev/null", "rb")
    if not f then return end
    held[#held + 1] = f
  end
end
local function release(n)
  for _ = 1, n or #held do
    local f = table.remove(held)
    if not f then return end
    f:close()
  end
end

local function check(cond, what)
  if not cond then
    release()
    io.stderr:write("FAILED: ", what, "\n")
    os.exit(1)
  end
end

local start_failed = 0
for case = 1, cases do
  local what = "case " .. case
  local c = assert(itnio.new{ api_key = "sandbox-key", api_secret = "sandbox-secret", base_url = url,
                              max_retries = gen:int(0, 2), backoff_base = 0.001, backoff_cap = 0.002,
                              timeout = 2, connect_timeout = 1 })
  if gen:chance(2) then exhaust() end
  if gen:chance(2) then
    local jobs, calls = {}, {}
    for i = 1, gen:int(1, 8) do
      local ok, job, err = pcall(c.start_recall_update, c, T,
                                 { on_done = function() calls[i] = (calls[i] or 0) + 1 end })
      check(ok, what .. ": start raised: " .. tostring(job))
      check(job or (err and err.kind == "TransportError"), what .. ": start gave " .. tostring(err))
      if job then jobs[#jobs + 1] = job else start_failed = start_failed + 1 end
    end
    local rounds = 0
    while true do
      if gen:chance(4) then release(gen:int(1, 8)) end
      if gen:chance(8) then exhaust() end
      local ok, left = pcall(c.poll, c, 0.01)
      check(ok, what .. ": poll raised: " .. tostring(left))
      local open = 0
      for _, job in ipairs(jobs) do if not job:done() then open = open + 1 end end
      check(left == open, what .. ": poll says " .. tostring(left) .. ", " .. open .. " not done")
      if open == 0 then break end
      rounds = rounds + 1
      if rounds > 200 then release() end
      check(rounds < 2000, what .. ": jobs never ended")
    end
    c:poll(0)
    for i in ipairs(jobs) do check((calls[i] or 0) <= 1, what .. ": on_done ran twice") end
  else
    local n = gen:int(0, 6)
    local tasks = {}
    for i = 1, n do tasks[i] = T end
    local ok, results = pcall(c.batch_recall_update, c, tasks, { concurrency = gen:int(1, 3) })
    check(ok, what .. ": the batch raised: " .. tostring(results))
    check(#results == n, what .. ": " .. #results .. " results for " .. n .. " tasks")
    for i = 1, n do check(results[i].res or results[i].err, what .. ": an empty result") end
    check(c:poll(0) == 0, what .. ": jobs left after the batch")
  end
  release()
  c:close()
end
io.stdout:write(cases, " scenarios held (", start_failed, " starts refused for want of a descriptor)\n")
