--- Jobs: updates that run while the host's own loop goes on, and the concurrent batch.
--
--   local job = client:start_recall_update(task, { on_done = function(res, err) end })
--   while client:poll(0) > 0 do ... the host's frame ... end
--   local res, err = job:result()
--   local results = client:update_recall_tasks(tasks, { concurrency = 16 })
--
-- Outside nginx every job of a client rides the client's one curl multi handle
-- (itnio.core.multi_new): poll(0) does what the sockets have ready and returns. Retry
-- backoff, Retry-After and the skew fix's resend are timers that poll checks, never sleeps.
-- What an attempt's outcome means comes from itnio.call, as for the blocking call.
-- Inside nginx the batch runs ngx.thread light threads on the cosocket transport.
-- @module itnio.jobs
local core   = require "itnio.core"
local errors = require "itnio.errors"
local compat = require "itnio.compat"
local call   = require "itnio.call"

local type, tostring, pcall, error, setmetatable, next, pairs = type, tostring, pcall, error, setmetatable, next, pairs
local floor, huge, min = math.floor, math.huge, math.min
local format = string.format
local now = compat.now
local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = {}

local WAITING, RUNNING, DONE = 1, 2, 3

-- A job is its call (itnio.call's table, one per update) with this metatable and a few
-- fields of its own: state, id (its transfer), wake (its timer), res/err, on_done, runner.
local Job = {}
local job_mt = { __index = Job, __name = "itnio.Job" }

function job_mt.__tostring(job)
  local state = job.state == DONE and (job.res and "updated" or "failed")
    or (job.state == RUNNING and "in flight" or "waiting to send")
  return format("itnio.Job(%s, attempt %d)", state, job.attempt)
end

--- job:done() -> true once the job has ended (result or error).
function Job:done()
  return self.state == DONE
end

--- job:result() -> what update_recall_task would have returned: res, or nil, err.
-- Raises when the job is not done yet (a programming error: poll until job:done()).
function Job:result()
  if self.state ~= DONE then
    error("job:result(): the job is not done yet; call client:poll() until job:done()", 2)
  end
  if self.res then return self.res end
  return nil, self.err
end

-- ---------------------------------------------------------------------------------------
-- The runner: one per client, made on its first job.

local function runner_of(client)
  local r = client._jobs
  if not r then
    -- A job not done is in by_id (its transfer runs) or in timers (it waits to send).
    r = { client = client, count = 0, finished = 0, by_id = {}, timers = {}, ended = {}, spare = {} }
    client._jobs = r
  end
  return r
end

-- The multi handle, made on first use with the client's transport options.
local function multi_of(r)
  local m = r.multi
  if not m then
    m = core.multi_new(require("itnio.transport.curl").handle_opts(r.client.transport_opts))
    r.multi = m
  end
  return m
end

local function finish(r, job, res, err)
  if job.state == DONE then return end
  job.state, job.res, job.err, job.id, job.wake = DONE, res, err, nil, nil
  r.count = r.count - 1
  r.finished = r.finished + 1
  if job.on_done then r.ended[#r.ended + 1] = job end
end

local function schedule(r, job, delay)
  job.state, job.wake = WAITING, now() + delay
  r.timers[#r.timers + 1] = job
end

local function advance(r, job, resp, terr)
  local what, x = call.outcome(job, resp, terr)
  if what == "done" then finish(r, job, x)
  elseif what == "stop" then finish(r, job, nil, x)
  else schedule(r, job, x) end
end

-- Starts the job's next attempt: on the multi handle, or through a transport function of
-- the caller's own (called right here: it is as blocking as that function is).
local function launch(r, job)
  local client = r.client
  if client.transport_name == "custom" then
    local req, err = call.request(job)
    if not req then return finish(r, job, nil, err) end
    return advance(r, job, call.attempt(client.transport, req))
  end
  local timeout, signed = call.begin(job)   -- (no request table: the handle copies what it needs)
  if not timeout then return finish(r, job, nil, signed) end
  local ok, id = pcall(multi_of(r).add, r.multi, "POST", job.url, signed.lines, job.body,
                       timeout, client.connect_timeout)
  if not ok then
    return advance(r, job, nil, { kind = "other", sent = false,
      message = "could not start the transfer: " .. tostring(id) })
  end
  job.state, job.id = RUNNING, id
  r.by_id[id] = job
end

-- Does what is ready without waiting: due timers start their attempt, finished transfers
-- are read and decided. Returns how many jobs ended.
local function step(r)
  local finished0 = r.finished
  local timers = r.timers
  if #timers > 0 then
    local t, keep = now(), {}
    r.timers = keep   -- launch may schedule a retry: it lands in keep
    for i = 1, #timers do
      local job = timers[i]
      if job.state == WAITING then
        if job.wake <= t then launch(r, job) else keep[#keep + 1] = job end
      end
    end
  end
  local m = r.multi
  if m and next(r.by_id) then
    m:perform()
    local id = m:next_done()
    while id do
      local job = r.by_id[id]
      r.by_id[id] = nil
      local status, head, body, reused = m:take(id)
      if job then
        job.id = nil
        if status then
          advance(r, job, { status = status, head = head, body = body, reused = reused })
        else
          advance(r, job, nil, head)
        end
      end
      id = m:next_done()
    end
  end
  return r.finished - finished0
end

-- The callbacks of the jobs that ended: an error in one is logged, never raised.
local function deliver(r)
  local ended = r.ended
  local n = #ended
  if n == 0 then return end
  -- Callbacks may start jobs (they end in a later poll) or poll again: those land in the
  -- other list, while this one empties.
  r.ended, r.spare = r.spare or {}, nil
  for i = 1, n do
    local job = ended[i]
    ended[i] = nil
    local ok, why = pcall(job.on_done, job.res, job.err, job)
    if not ok then
      local client = r.client
      local msg = "itnio: an on_done callback raised: " .. tostring(call.redact(client, tostring(why)))
      if client.logger then
        client:_log("error", msg, { attempt = job.attempt })
      elseif not r.warned then
        r.warned = true
        io.stderr:write(msg, " (said once per client)\n")
      end
    end
  end
  r.spare = ended
end

-- The next timer, in seconds from now (huge when none).
local function next_timer(r)
  local t, soonest = now(), huge
  for i = 1, #r.timers do
    local job = r.timers[i]
    if job.state == WAITING and job.wake - t < soonest then soonest = job.wake - t end
  end
  return soonest
end

-- Waits at most `seconds` for a socket, libcurl's own timer or the next retry timer.
local function wait(r, seconds)
  seconds = min(seconds, next_timer(r))
  if seconds <= 0 then return end
  if r.multi and next(r.by_id) then
    r.multi:wait(seconds)
  else
    compat.sleep(seconds)
  end
end

local function poll(r, timeout)
  local until_t = timeout > 0 and now() + timeout or nil
  while true do
    local ended = step(r)
    deliver(r)
    if ended > 0 or r.count == 0 or not until_t then break end
    local left = until_t - now()
    if left <= 0 then break end
    wait(r, left)
  end
  return r.count
end

local function cancel(r, job, reason, message)
  if job.state == DONE then return false end
  local sent = false
  if job.state == RUNNING and job.id then
    r.by_id[job.id] = nil
    if r.multi then sent = r.multi:cancel(job.id) == true end
  end
  finish(r, job, nil, errors.TransportError.new{ reason = reason, message = message,
    sent = sent or job.sent, attempts = job.attempt })
  return true
end

-- ---------------------------------------------------------------------------------------
-- The client's methods.

local function check_on_done(f, fname)
  if f ~= nil and type(f) ~= "function" then
    error("bad argument #2 to '" .. fname .. "' (opts.on_done must be a function)", 3)
  end
end

--- Adds start_recall_update, poll, update_recall_tasks to the client class.
-- @local
function _M.install(Client, endpoint, closed_error)

  -- A new job for a body, or nil, err when jobs cannot run here.
  local function start(self, body, opts, budget, on_done)
    if self.closed then return nil, closed_error() end
    local _, phase = compat.ngx_phase()
    if phase ~= nil and self.transport_name ~= "curl" and self.transport_name ~= "custom" then
      return nil, errors.ConfigError.new{ message = "jobs run on libcurl's multi handle, which "
        .. "would block an nginx worker: inside nginx use client:update_recall_tasks "
        .. "(ngx.thread), or make the client with transport = \"curl\"" }
    end
    local r = runner_of(self)
    local job = setmetatable(call.new(self, endpoint, body, opts, budget), job_mt)
    job.state, job.on_done, job.runner = WAITING, on_done, r
    r.count = r.count + 1
    if self.transport_name == "custom" then
      schedule(r, job, 0)   -- a transport function of the caller's runs from poll only
    else
      launch(r, job)        -- multi:add only queues the transfer: libcurl acts in poll
    end
    return job
  end

  --- client:start_recall_update(task [, opts]) -> job, or nil, ValidationError (nothing
  -- sent). Never waits on the network. opts: passthrough, deadline, on_done(res, err, job).
  function Client:start_recall_update(task, opts)
    local on_done = opts and opts.on_done
    check_on_done(on_done, "start_recall_update")
    local body, err = call.encode(self, endpoint, task, opts, "start_recall_update")
    if not body then return nil, err end
    return start(self, body, opts, nil, on_done)
  end

  --- client:poll([timeout]) -> how many jobs are still running. Without a timeout (or 0)
  -- it does what is ready and returns; with one it waits until a job ends or the timeout
  -- passes. on_done callbacks run from here.
  function Client:poll(timeout)
    if timeout == nil then timeout = 0 end
    if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 or timeout > 86400 then
      error("bad argument #1 to 'poll' (timeout must be a number of seconds from 0 to 86400)", 2)
    end
    local r = self._jobs
    if not r then return 0 end
    return poll(r, timeout)
  end

  --- job:cancel() -> true if the job was running. It ends with a TransportError whose
  -- reason is "cancelled" (sent: any byte of it left). Its on_done runs in the next poll.
  function Job:cancel()
    return cancel(self.runner, self, "cancelled", "the job was cancelled")
  end

  --- client:update_recall_tasks(tasks [, opts]) -> results, one per task in order:
  -- { res = res } or { err = err }. opts: concurrency (16), deadline (seconds for the whole
  -- batch), on_done(res, err, index), passthrough, retry_budget (retries the batch may
  -- spend; default max(concurrency, 10% of the tasks); a success earns 0.1 back).
  function Client:update_recall_tasks(tasks, opts)
    if type(tasks) ~= "table" then
      error("bad argument #1 to 'update_recall_tasks' (table expected, got " .. type(tasks) .. ")", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #2 to 'update_recall_tasks' (table expected, got " .. type(opts) .. ")", 2)
    end
    opts = opts or {}
    local n = #tasks
    local conc = opts.concurrency or 16
    if type(conc) ~= "number" or conc ~= floor(conc) or conc < 1 or conc > 10000 then
      error("bad argument #2 to 'update_recall_tasks' (concurrency must be a whole number from 1 to 10000)", 2)
    end
    local dl = opts.deadline
    if dl ~= nil and (type(dl) ~= "number" or dl ~= dl or dl <= 0 or dl > 86400) then
      error("bad argument #2 to 'update_recall_tasks' (deadline must be seconds from 0 to 86400)", 2)
    end
    local rb = opts.retry_budget
    if rb ~= nil and (type(rb) ~= "number" or rb ~= rb or rb < 0) then
      error("bad argument #2 to 'update_recall_tasks' (retry_budget must be a number >= 0)", 2)
    end
    local user_done = opts.on_done
    check_on_done(user_done, "update_recall_tasks")
    local budget = call.budget(rb or math.max(conc, math.ceil(n / 10)))
    local copts = { passthrough = opts.passthrough, deadline_at = dl and now() + dl or nil,
                    deadline = dl }
    local results = {}

    local function settle(i, res, err)
      results[i] = res and { res = res } or { err = err }
      if user_done then
        local ok, why = pcall(user_done, res, err, i)
        if not ok then
          self:_log("error", "itnio: an on_done callback raised: " .. tostring(call.redact(self, tostring(why))),
                    { index = i }, true)
        end
      end
    end

    local function body_of(i)
      return call.encode(self, endpoint, tasks[i], copts, "update_recall_tasks")
    end

    if self.closed then
      for i = 1, n do settle(i, nil, closed_error()) end
      return results
    end

    local _, phase = compat.ngx_phase()
    if phase ~= nil and self.transport_name ~= "curl" and self.transport_name ~= "custom" then
      -- Inside nginx: light threads on the cosocket transport, at most conc at once.
      local transport, terr = self:_transport()
      if not transport then   -- a phase without cosockets: every task gets that error
        for i = 1, n do settle(i, nil, terr) end
        return results
      end
      local nexti = 0
      local function worker()
        while nexti < n do
          nexti = nexti + 1
          local i = nexti
          local body, err = body_of(i)
          if body then
            local c = call.new(self, endpoint, body, copts, budget)
            local res
            res, err = call.run(c, transport, compat.sleep)
            settle(i, res, err)
          else
            settle(i, nil, err)
          end
        end
      end
      local threads = {}
      for t = 1, min(conc, n) do threads[t] = ngx.thread.spawn(worker) end
      for t = 1, #threads do ngx.thread.wait(threads[t]) end
      for i = 1, n do
        if not results[i] then
          results[i] = { err = errors.TransportError.new{ reason = "other", attempts = 0,
            message = "the batch's light thread ended before this task" } }
        end
      end
      return results
    end

    -- Elsewhere: jobs on the client's multi handle, at most conc in flight.
    local r = runner_of(self)
    local nexti, active = 0, 0
    local function on_end(res, err, job)
      active = active - 1
      settle(job.index, res, err)
    end
    while true do
      while active < conc and nexti < n do
        nexti = nexti + 1
        local i = nexti
        local body, err = body_of(i)
        if body then
          local job
          job, err = start(self, body, copts, budget, on_end)
          if job then job.index = i; active = active + 1 else settle(i, nil, err) end
        else
          settle(i, nil, err)
        end
      end
      if active == 0 and nexti >= n then break end
      poll(r, 1)
    end
    return results
  end
end

--- Ends every job of a closed client: no callback runs; the multi handle is freed.
-- @local
function _M.close(client)
  local r = client._jobs
  if not r then return end
  for _, job in pairs(r.by_id) do cancel(r, job, "closed", "the client was closed while the job ran") end
  for _, job in ipairs(r.timers) do cancel(r, job, "closed", "the client was closed while the job ran") end
  r.ended, r.timers, r.by_id = {}, {}, {}
  if r.multi then r.multi:close() end
  r.multi = nil
end

return _M
