-- Property: whatever the caller's callbacks, logger and transport do, jobs and the batch
-- hold. Generated scenarios, each a few jobs or a batch on one client, where
--   the transport answers 200, 503, -18, -22, a timeout, or raises, or yields (the host
--     resumes it later, or abandons its coroutine), or closes the client, cancels a job,
--     starts a job, polls;
--   on_done and the logger do nothing, raise strings or values that cannot be printed,
--     close the client, poll, cancel or start jobs;
--   the host polls from its main thread or from coroutines.
-- For each: poll and the batch never raise; poll's count is the number of jobs not done; a
-- job that ended stays ended with the same outcome; each on_done runs at most once, and
-- exactly once unless the client was closed; everything ends; the secret shows nowhere.
-- Then the same on the multi handle against the sandbox, with closes from every kind of
-- callback, and in a child Lua that runs out of file descriptors now and then.
-- ITNIO_PROPERTY_SEED and ITNIO_PROPERTY_CASES vary it.
local answers = require "support.answers"
local hostile = require "support.hostile"
local sandbox = require "support.sandbox"
local dump    = require("support.fixtures").dump

local SEED   = tonumber(os.getenv("ITNIO_PROPERTY_SEED") or "") or 20261130
local CASES  = tonumber(os.getenv("ITNIO_PROPERTY_CASES") or "") or 3000
local SECRET = "j0bs/pr0p-s3cret"
local T      = hostile.TASK
local YIELDS = hostile.pcall_yields()

local OK   = { status = 200, headers = {}, body = '{"code":0,"msg":"success"}' }
local S503 = { status = 503, headers = {}, body = "busy" }
local C18  = { status = 200, headers = {}, body = '{"code":-18,"msg":"system"}' }
local C22  = { status = 200, headers = {}, body = '{"code":-22,"msg":"bad ' .. SECRET .. '"}' }

-- One generated world: a client, its jobs, and what the callbacks may do to it.
local World = {}
World.__index = World

function World.new(gen, what, over)
  local w = setmetatable({ gen = gen, what = what, jobs = {}, calls = {}, outcome = {}, log = {},
                           parked = {}, closed = false, yields = YIELDS and gen:chance(3) }, World)
  local logger_kind = gen:pick{ "none", "quiet", "quiet", "raises", "closes", "polls" }
  local opts = {
    api_key = "prop-key", api_secret = SECRET, base_url = "http://127.0.0.1:9",
    max_retries = gen:int(0, 2), backoff_base = 0.001, backoff_cap = 0.003,
    transport = function(req) return w:transport(req) end,
  }
  if gen:chance(4) then opts.deadline = gen:pick{ 0.02, 0.2 } end
  for k, v in pairs(over or {}) do opts[k] = v end
  if opts.transport == false then opts.transport = nil end   -- (the multi handle)
  w.secret = opts.api_secret
  if logger_kind ~= "none" then
    opts.logger = function(level, message, fields)
      w.log[#w.log + 1] = level .. " " .. message .. " " .. dump(fields)
      if logger_kind == "raises" then error(hostile.unprintable()) end
      if logger_kind == "closes" and level == "error" and gen:chance(3) then w:close() end
      if logger_kind == "polls" then w.client:poll(0) end
    end
  end
  w.client = assert(require("itnio").new(opts))
  return w
end

function World:close()
  self.closed = true
  self.client:close()
end

-- A random thing a callback does to the world.
function World:meddle()
  local gen = self.gen
  local k = gen:int(1, 12)
  if k == 1 then self:close()
  elseif k == 2 then self.client:poll(0)
  elseif k == 3 and #self.jobs > 0 then self.jobs[gen:int(1, #self.jobs)]:cancel()
  elseif k == 4 and not self.batch then self:start()   -- (a batch's count would then include it)
  elseif k == 5 then error("a callback broke")
  elseif k == 6 then error(hostile.unprintable())
  elseif k == 7 then error(hostile.tabular())
  elseif k == 8 then error(nil)
  end
end

function World:transport()
  local gen = self.gen
  if gen:chance(6) then self:meddle() end
  local k = gen:int(1, 10)
  if k <= 4 then return OK end
  if k == 5 then return S503 end
  if k == 6 then return C18 end
  if k == 7 then return C22 end
  if k == 8 then
    return nil, { kind = gen:pick{ "timeout", "reset", "connect" }, message = "failed", sent = gen:chance(2) }
  end
  -- (from the host's main thread, or where pcall cannot yield, the yield is an error: a raise)
  if k == 9 and self.yields then return coroutine.yield("parked") end
  if k == 10 then error(gen:chance(2) and "transport raised" or hostile.unprintable()) end
  return OK
end

-- Starts a job whose on_done records its calls and meddles now and then.
function World:start()
  local i = #self.jobs + 1
  local job, err = self.client:start_recall_update(T, { on_done = function(res, err, job)
    self.calls[i] = (self.calls[i] or 0) + 1
    assert(self.jobs[i] == job, "on_done got another job")
    assert(res or err, "on_done with neither res nor err")
    if self.gen:chance(3) then self:meddle() end
  end })
  if not job then
    assert(self.closed and err.reason == "closed", self.what .. ": start failed: " .. tostring(err))
    return
  end
  self.jobs[i] = job
end

-- The invariants after any poll.
function World:check(left)
  local open = 0
  for i, job in ipairs(self.jobs) do
    if job:done() then
      local res, err = job:result()
      local now = res or err
      if self.outcome[i] == nil then self.outcome[i] = now end
      assert(self.outcome[i] == now, self.what .. ": job " .. i .. " changed its outcome")
      assert((self.calls[i] or 0) <= 1,
             self.what .. ": on_done of job " .. i .. " ran " .. tostring(self.calls[i]) .. " times")
    else
      open = open + 1
    end
  end
  assert(left == open,
         self.what .. ": poll says " .. tostring(left) .. " jobs run, " .. open .. " are not done")
end

-- A poll by the host: from its main thread, or from a coroutine that the transport may park.
function World:poll()
  local gen, c = self.gen, self.client
  if #self.parked > 0 and gen:chance(2) then   -- resume a parked attempt, or abandon it
    local co = table.remove(self.parked, gen:int(1, #self.parked))
    if gen:chance(4) then return self:check(c:poll(0)) end   -- abandoned
    local ok, v = coroutine.resume(co, gen:pick{ OK, S503, C18 })
    assert(ok, self.what .. ": a resumed poll raised: " .. tostring(v))
    if v == "parked" then self.parked[#self.parked + 1] = co end
    return
  end
  if self.yields and gen:chance(2) then
    local co = coroutine.create(function() return c:poll(0) end)
    local ok, v = coroutine.resume(co)
    assert(ok, self.what .. ": poll raised: " .. tostring(v))
    if v == "parked" then self.parked[#self.parked + 1] = co else self:check(v) end
    return
  end
  local ok, left = pcall(c.poll, c, gen:pick{ 0, 0, 0.001 })
  assert(ok, self.what .. ": poll raised: " .. tostring(left))
  self:check(left)
end

function World:secret_free(...)
  local seen = dump({ ... }) .. table.concat(self.log, "\n")
  for _, job in ipairs(self.jobs) do
    if job:done() then
      local res, err = job:result()
      seen = seen .. dump({ res, err }) .. tostring(err)
    end
  end
  assert(not seen:find(self.secret, 1, true), self.what .. ": the secret shows")
end

local function run_jobs(gen, what, over)
  local w = World.new(gen, what, over)
  for _ = 1, gen:int(1, 6) do w:start() end
  hostile.within(20, function()
    local rounds = 0
    while true do
      w:poll()
      rounds = rounds + 1
      local open = 0
      for _, job in ipairs(w.jobs) do if not job:done() then open = open + 1 end end
      if open == 0 then   -- a last poll delivers the callbacks due; they may start more jobs
        local jobs = #w.jobs
        w:check(w.client:poll(0))
        if #w.jobs == jobs then break end
      end
      if rounds > 400 then   -- only parked ones can be left: the host gives up on them
        for _, job in ipairs(w.jobs) do job:cancel() end
      end
    end
  end)
  w.parked = {}
  for i, job in ipairs(w.jobs) do
    assert(job:done(), what .. ": job " .. i .. " did not end")
    if not w.closed then
      assert.equal(1, w.calls[i] or 0, what .. ": on_done of job " .. i)
    end
  end
  w:secret_free()
end

local function run_batch(gen, what, over)
  local w = World.new(gen, what, over)
  w.batch = true
  local n = gen:int(0, 8)
  local tasks, seen = {}, {}
  for i = 1, n do tasks[i] = T end
  local opts = { concurrency = gen:int(1, 4), on_done = function(res, err, i)
    seen[i] = (seen[i] or 0) + 1
    assert(res or err, "on_done with neither res nor err")
    if gen:chance(3) then w:meddle() end
  end }
  if gen:chance(4) then opts.deadline = gen:pick{ 0.02, 0.2 } end
  local results
  hostile.within(20, function()
    local co = coroutine.create(function() return w.client:batch_recall_update(tasks, opts) end)
    local ok, v = coroutine.resume(co)
    while ok and v == "parked" do   -- the host answers a parked attempt, maybe after a poll of its own
      if gen:chance(3) then w.client:poll(0) end
      ok, v = coroutine.resume(co, gen:pick{ OK, S503 })
    end
    assert(ok, what .. ": the batch raised: " .. tostring(v))
    results = v
  end)
  assert.equal(n, #results, what)
  for i = 1, n do
    local r = results[i]
    assert(type(r) == "table" and (r.res ~= nil) ~= (r.err ~= nil),
           what .. ": result " .. i .. " is " .. dump(r))
    assert((seen[i] or 0) <= 1, what .. ": on_done ran " .. tostring(seen[i]) .. " times for task " .. i)
    if not w.closed then assert.equal(1, seen[i] or 0, what .. ": on_done for task " .. i) end
  end
  assert.equal(0, w.client:poll(0), what .. ": jobs left after the batch")
  w:secret_free(results)
end

describe("property: jobs and the batch hold whatever the caller's code does", function()
  it(("jobs on a transport function, %d generated scenarios (seed %d)")
    :format(math.floor(CASES / 3), SEED), function()
    local gen = answers.new(SEED, SECRET)
    for i = 1, math.floor(CASES / 3) do run_jobs(gen, "jobs case " .. i) end
  end)

  it(("batches on a transport function, %d generated scenarios (seed %d)")
    :format(math.floor(CASES / 3), SEED + 1), function()
    local gen = answers.new(SEED + 1, SECRET)
    for i = 1, math.floor(CASES / 3) do run_batch(gen, "batch case " .. i) end
  end)
end)

describe("property: jobs and the batch on the multi handle hold whatever the callbacks do", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  local N = math.max(10, math.floor(CASES / 60))
  it(("%d generated scenarios against the sandbox, closes from loggers and callbacks (seed %d)")
    :format(N, SEED + 2), function()
    local gen = answers.new(SEED + 2, SECRET)
    for i = 1, N do
      sb:reset()
      local k = gen:int(1, 5)
      if k == 1 then sb:fault{ count = gen:int(1, 6), kind = "status", status = 503 }
      elseif k == 2 then sb:fault{ count = gen:int(1, 6), kind = "code", code = -18 }
      elseif k == 3 then sb:fault{ count = gen:int(1, 3), kind = "reset" }
      elseif k == 4 then sb:fault{ count = gen:int(1, 6), kind = "delay", ms = 30 } end
      -- the sandbox's own account: the secret is the sandbox's, and no answer echoes it
      local over = { base_url = sb.http_url, api_key = sb.api_key, api_secret = sb.api_secret,
                     transport = false }
      if gen:chance(2) then
        run_jobs(gen, "multi jobs case " .. i, over)
      else
        run_batch(gen, "multi batch case " .. i, over)
      end
    end
  end)

  it("in a child Lua that runs out of file descriptors now and then", function()
    local lua = sandbox.shell_quote(require("support.shell").lua)
    local out, ok = sandbox.run("cd " .. sandbox.shell_quote(sandbox.root) .. " && "
      .. hostile.fd_limit(48) .. "timeout 60 "
      .. lua .. " spec/support/fd_scenarios.lua " .. sandbox.shell_quote(sb.http_url)
      .. " " .. (SEED + 3) .. " 40 "
      .. sandbox.shell_quote(hostile.core_cpath()))
    assert.is_true(ok, out)
    assert.truthy(out:find("40 scenarios held", 1, true), out)
  end)
end)
