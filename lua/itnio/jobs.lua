--- Jobs: updates that run while the host's own loop goes on, and the concurrent batch.
--
--     local job = client:start_recall_update(task, {
--       on_done = function(res, err) end,
--     })
--     while client:poll(0) > 0 do
--       -- the host's frame
--     end
--     local res, err = job:result()
--     local results = client:update_recall_tasks(tasks, { concurrency = 16 })
--
-- Outside nginx every job of a client rides the client's one curl multi handle
-- (`itnio.core.multi_new`): `poll(0)` does what the sockets have ready and returns. Retry
-- backoff, `Retry-After` and the skew fix's resend are timers that `poll` checks, never sleeps.
-- What an attempt's outcome means comes from `itnio.call`, as for the blocking call.
-- Inside nginx the batch runs `ngx.thread` light threads on the cosocket transport.
--
-- Whatever a callback, a logger or a transport function of the caller's does (raise, poll,
-- start or cancel jobs, close the client, yield and never come back), a job ends once: the
-- runner takes one thing at a time out of its queues before it calls out, so nothing is
-- held in a local that a coroutine left behind would lose.
-- @module itnio.jobs
local core   = require "itnio.core"
local errors = require "itnio.errors"
local compat = require "itnio.compat"
local call   = require "itnio.call"
local args   = require "itnio.args"
-- Loaded now, not on first use: with no file descriptor left, a require fails as "not found".
local curl   = require "itnio.transport.curl"

local type, tostring, pcall, setmetatable, pairs, next, rawget =
      type, tostring, pcall, setmetatable, pairs, next, rawget
local floor, huge, min, max, ceil = math.floor, math.huge, math.min, math.max, math.ceil
local format = string.format
local now = compat.now
local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = {}

-- WAITING: in the queue (ready to go) or waiting for its retry timer. SENDING: a transport
-- function of the caller's runs its attempt (and may yield). RUNNING: its transfer is on the
-- multi handle. DONE: ended, for good.
local WAITING, SENDING, RUNNING, DONE = 1, 2, 3, 4

-- Transfers on a client's multi handle at once; more jobs wait in the queue, in order. Past a
-- few hundred, libcurl's own bookkeeping grows with the square of the transfers.
local MAX_TRANSFERS = 256
-- Attempts one poll starts at most, so that a poll stays short whatever the number of jobs.
local SLICE = 128

-- A job is its call (itnio.call's table, one per update) with this metatable and a few
-- fields of its own: state, id (its transfer), res/err, on_done, runner, and its places in
-- the runner's timer heaps (wpos, dpos).
local Job = {}
local job_mt = { __index = Job, __name = "itnio.Job" }

function job_mt.__tostring(job)
  local state = job.state == DONE and (job.res and "updated" or "failed")
    or (job.state == WAITING and "waiting to send" or "in flight")
  return format("itnio.Job(%s, attempt %d)", state, job.attempt)
end

--- Whether the job has ended (with a result or an error).
-- @treturn boolean true once it has
function Job:done()
  return self.state == DONE
end

--- What `update_recall_task` would have returned for the job's task.
-- @treturn table the answer, `{ code = 0, message, data, http_status, attempts }`
-- @return[2] nil
-- @treturn[2] table the error, of a class of `itnio.errors`
-- @raise when the job is not done yet (a programming error: poll until `job:done()`)
function Job:result()
  if self.state ~= DONE then
    error("job:result(): the job is not done yet; call client:poll() until job:done()", 2)
  end
  if self.res then return self.res end
  return nil, self.err
end

-- ---------------------------------------------------------------------------------------
-- Timer heaps: min-heaps of jobs by time, each job knowing its place (job[pos]), so that a
-- job that ends leaves them at once (nothing stale holds it, whatever its deadline).

local function heap_new(pos)
  return { n = 0, at = {}, job = {}, pos = pos }
end

local function heap_place(h, i, at, job)
  h.at[i], h.job[i] = at, job
  job[h.pos] = i
end

local function heap_up(h, i)
  local at, job = h.at[i], h.job[i]
  while i > 1 do
    local p = floor(i / 2)
    if h.at[p] <= at then break end
    heap_place(h, i, h.at[p], h.job[p])
    i = p
  end
  heap_place(h, i, at, job)
end

local function heap_down(h, i)
  local n, at, job = h.n, h.at[i], h.job[i]
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and h.at[c + 1] < h.at[c] then c = c + 1 end
    if at <= h.at[c] then break end
    heap_place(h, i, h.at[c], h.job[c])
    i = c
  end
  heap_place(h, i, at, job)
end

local function heap_push(h, job, at)
  local i = h.n + 1
  h.n = i
  h.at[i], h.job[i] = at, job
  heap_up(h, i)
end

local function heap_remove(h, job)
  local i = job[h.pos]
  if not i then return end
  job[h.pos] = nil
  local n = h.n
  local at, last = h.at[n], h.job[n]
  h.at[n], h.job[n], h.n = nil, nil, n - 1
  if i == n then return end
  h.at[i], h.job[i] = at, last
  last[h.pos] = i
  if i > 1 and at < h.at[floor(i / 2)] then heap_up(h, i) else heap_down(h, i) end
end

-- ---------------------------------------------------------------------------------------
-- The runner: one per client, made on its first job. A job not done is in exactly one of:
-- the queue (ready to go), the retry timers (wakes), by_id (its transfer runs), sending (its
-- transport function runs). A job with a deadline is also in the deadline heap until it ends.

local function runner_of(client)
  local r = client._jobs
  if not r then
    r = { client = client, count = 0, finished = 0, by_id = {}, transfers = 0,
          queue = {}, qhead = 1, qtail = 0, ended = {}, ehead = 1, etail = 0, sending = {},
          wakes = heap_new("wpos"), deadlines = heap_new("dpos") }
    client._jobs = r
  end
  return r
end

-- The multi handle, made on first use with the client's transport options; or nil, err
-- (no file descriptor left for its epoll set, no memory).
local function multi_of(r)
  local m = r.multi
  if m then return m end
  local ok, made = pcall(core.multi_new, curl.handle_opts(r.client.transport_opts))
  if not ok then
    return nil, errors.TransportError.new{ reason = "other", attempts = 0,
      message = "could not start a job: " .. tostring(made) }
  end
  r.multi = made
  return made
end

local function enqueue(r, job)
  local t = r.qtail + 1
  r.qtail = t
  r.queue[t] = job
end

local function dequeue(r)
  local h = r.qhead
  local job = r.queue[h]
  r.queue[h] = nil
  if h >= r.qtail then r.qhead, r.qtail = 1, 0 else r.qhead = h + 1 end
  return job
end

local function finish(r, job, res, err)
  if job.state == DONE then return end
  job.state, job.res, job.err, job.id = DONE, res, err, nil
  heap_remove(r.wakes, job)
  heap_remove(r.deadlines, job)
  r.count = r.count - 1
  r.finished = r.finished + 1
  if job.on_done and not r.closed then   -- after close, no callback runs
    local t = r.etail + 1
    r.etail = t
    r.ended[t] = job
  end
end

-- Ends a job that has not: its transfer stopped, whatever it was doing.
local function stop(r, job, err)
  if job.state == DONE then return false end
  if job.state == RUNNING and job.id then
    r.by_id[job.id] = nil
    r.transfers = r.transfers - 1
    local sent = r.multi and r.multi:cancel(job.id) == true
    if sent then job.sent = true end
  end
  if job.state == SENDING then   -- the caller's transport has the request: it may have left
    r.sending[job] = nil
    job.sent = true
  end
  err.sent = job.sent
  err.attempts = job.attempt
  finish(r, job, nil, err)
  return true
end

local function schedule(r, job, delay)
  if r.closed then return finish(r, job, nil, call.closed_error(job.attempt)) end
  job.state = WAITING
  if delay > 0 then heap_push(r.wakes, job, now() + delay) else enqueue(r, job) end
end

-- The decision after an attempt. The logger it may call can end the job meanwhile (a close,
-- a cancel, a poll that passed its deadline): an ended job stays ended.
local function advance(r, job, resp, terr)
  local what, x = call.outcome(job, resp, terr)
  if job.state == DONE then return end
  if what == "done" then finish(r, job, x)
  elseif what == "stop" then finish(r, job, nil, x)
  else schedule(r, job, x) end
end

-- Starts the job's next attempt: on the multi handle, or through a transport function of
-- the caller's own (called right here: it is as blocking as that function is, and it may
-- yield; the job is SENDING until it returns, and its answer is dropped if the job ended).
local function launch(r, job)
  local client = r.client
  if client.transport_name == "custom" then
    local req, err = call.request(job)
    if not req then return finish(r, job, nil, err) end
    job.state = SENDING
    r.sending[job] = true
    local resp, terr = call.attempt(client.transport, req)
    if job.state ~= SENDING then return end
    r.sending[job] = nil
    return advance(r, job, resp, terr)
  end
  local timeout, signed = call.begin(job)   -- (no request table: the handle copies what it needs)
  if not timeout then return finish(r, job, nil, signed) end
  local m = r.multi
  local ok, id = pcall(m.add, m, "POST", job.url, signed.lines, job.body, timeout, client.connect_timeout)
  if not ok then
    return advance(r, job, nil, { kind = "other", sent = false,
      message = "could not start the transfer: " .. tostring(id) })
  end
  job.state, job.id = RUNNING, id
  r.by_id[id] = job
  r.transfers = r.transfers + 1
end

local function deadline_passed(r, job)
  stop(r, job, call.deadline_error(job, job.state ~= WAITING))
end

-- Does what is ready without waiting, a bounded amount of it: deadlines that passed end
-- their jobs, retry timers that are due queue theirs, at most SLICE attempts start (at most
-- MAX_TRANSFERS on the wire), finished transfers are read and decided. Every call out (a
-- transport function, a logger) may close the client: then it stops.
local function step(r)
  local t = now()
  local d = r.deadlines
  while d.n > 0 and d.at[1] <= t do deadline_passed(r, d.job[1]) end
  local w = r.wakes
  while w.n > 0 and w.at[1] <= t do
    local job = w.job[1]
    heap_remove(w, job)
    enqueue(r, job)
  end
  local custom = r.client.transport_name == "custom"
  local budget = SLICE
  while r.qhead <= r.qtail and budget > 0 and (custom or r.transfers < MAX_TRANSFERS) do
    local job = dequeue(r)
    if job.state == WAITING then
      budget = budget - 1
      launch(r, job)
      if r.closed then return end
    end
  end
  local m = r.multi
  if m and r.transfers > 0 then
    m:perform()
    local id = m:next_done()
    while id do
      local job = r.by_id[id]
      r.by_id[id] = nil
      local status, head, body, reused = m:take(id)
      if job then
        r.transfers = r.transfers - 1
        job.id = nil
        if status then
          advance(r, job, { status = status, head = head, body = body, reused = reused })
        else
          advance(r, job, nil, head)
        end
        if r.closed then return end
      end
      id = m:next_done()
    end
  end
end

--- A callback of the caller's raised: the client's logger hears it each time; with no logger,
-- stderr hears it once per client. Never raises.
-- @local
function _M.callback_raised(client, why, fields)
  local msg = "itnio: an on_done callback raised: " .. call.redact(client, errors.text(why))
  if client.logger then
    client:_log("error", msg, fields)
  elseif not client._callback_warned then
    client._callback_warned = true
    pcall(io.stderr.write, io.stderr, msg, " (said once per client)\n")
  end
end

-- The callbacks of the jobs that ended, one at a time out of the shared list (a callback may
-- poll, start jobs, close the client, or yield and never come back).
local function deliver(r)
  while r.ehead <= r.etail and not r.closed do
    local h = r.ehead
    local job = r.ended[h]
    r.ended[h] = nil
    if h >= r.etail then r.ehead, r.etail = 1, 0 else r.ehead = h + 1 end
    local ok, why = pcall(job.on_done, job.res, job.err, job)
    if not ok then _M.callback_raised(r.client, why, { attempt = job.attempt }) end
  end
end

-- Seconds until something is due (0: work is ready now; huge: nothing but the sockets).
local function next_due(r)
  if r.qhead <= r.qtail and (r.client.transport_name == "custom" or r.transfers < MAX_TRANSFERS) then
    return 0
  end
  local t, soonest = now(), huge
  if r.wakes.n > 0 then soonest = r.wakes.at[1] - t end
  if r.deadlines.n > 0 then soonest = min(soonest, r.deadlines.at[1] - t) end
  return soonest
end

-- Waits at most `seconds` for a socket, libcurl's own timer, a retry timer or a deadline.
local function wait(r, seconds)
  seconds = min(seconds, next_due(r))
  if seconds <= 0 then return end
  if r.multi and r.transfers > 0 then
    r.multi:wait(seconds)
  else
    compat.sleep(seconds)
  end
end

local function poll(r, timeout)
  local until_t = timeout > 0 and now() + timeout or nil
  while not r.closed do
    local finished0 = r.finished
    step(r)
    deliver(r)
    if r.finished > finished0 or r.count == 0 or not until_t or r.closed then break end
    local left = until_t - now()
    if left <= 0 then break end
    wait(r, left)
  end
  return r.count
end

-- A new job for a body, queued (poll starts it), or nil, err when it cannot run here.
local function start(client, endpoint, body, opts, budget, on_done)
  if client.closed then return nil, call.closed_error() end
  local _, phase = compat.ngx_phase()
  local custom = client.transport_name == "custom"
  if phase ~= nil and client.transport_name ~= "curl" and not custom then
    return nil, errors.ConfigError.new{ message = "jobs run on libcurl's multi handle, which "
      .. "would block an nginx worker: inside nginx use client:update_recall_tasks "
      .. "(ngx.thread), or make the client with transport = \"curl\"" }
  end
  local r = runner_of(client)
  if not custom then
    local m, err = multi_of(r)
    if not m then return nil, err end
  end
  local job = setmetatable(call.new(client, endpoint, body, opts, budget), job_mt)
  job.state, job.on_done, job.runner = WAITING, on_done, r
  r.count = r.count + 1
  if job.deadline_at then heap_push(r.deadlines, job, job.deadline_at) end
  enqueue(r, job)   -- nothing leaves here: poll starts it
  return job
end

--- Stops the job. It ends with a TransportError whose `reason` is `"cancelled"` (its `sent`
-- says whether any byte of it left); its `on_done` runs in the next `poll`.
-- @treturn boolean true if the job was running, false if it had ended already
function Job:cancel()
  return stop(self.runner, self, errors.TransportError.new{ reason = "cancelled",
    message = "the job was cancelled" })
end

-- ---------------------------------------------------------------------------------------
-- The client's methods.

local function check_on_done(f, fname)
  if f ~= nil and type(f) ~= "function" then args.bad(2, fname, "opts.on_done must be a function", 3) end
end

-- The number of tasks in a list, checked before anything is sent: every index from 1 to the
-- last holds a table (keys that are not positive whole numbers, such as table.pack's n, are
-- not tasks). Read raw, as the core reads a task.
local function task_count(tasks, fname)
  local n, count = 0, 0
  for k, v in next, tasks do
    if type(k) == "number" and k >= 1 and k == floor(k) then
      if type(v) ~= "table" then
        args.bad(1, fname, format("tasks[%d] is a %s, not a task table", k, type(v)), 3)
      end
      count = count + 1
      if k > n then n = k end
    end
  end
  if count ~= n then
    for i = 1, count + 1 do
      if rawget(tasks, i) == nil then
        args.bad(1, fname, format("tasks[%d] is nil: the list has a hole (every task from 1 to the last must be there)", i), 3)
      end
    end
  end
  return n
end

local START_OPTS = args.set{ "passthrough", "deadline", "on_done" }
local BATCH_OPTS = args.set{ "concurrency", "deadline", "on_done", "passthrough", "retry_budget" }

--- Adds start_recall_update, poll, update_recall_tasks to the client class.
-- (Named by @function: else LDoc reads the header below, and takes the doc comment that
-- follows it for this function's, leaving start_recall_update out of the page.)
-- @local
-- @function install
function _M.install(Client, endpoint)

  --- Starts updating a task, and returns at once: the job sends nothing until `poll`, and
  -- never waits on the network.
  -- @tparam table task the task, as for `update_recall_task`
  -- @tparam[opt] table opts `passthrough`, `deadline` (as for `update_recall_task`), and
  -- `on_done`, a `function(res, err, job)` that `poll` calls when the job ends
  -- @treturn Job the job
  -- @return[2] nil
  -- @treturn[2] table a ValidationError (nothing sent), or a TransportError when no job can
  -- start (no file descriptor left, a closed client)
  -- @raise when task is not a table, or opts is not a table or has an unknown name or a bad value
  function Client:start_recall_update(task, opts)
    if opts ~= nil then args.options(opts, START_OPTS, 2, "start_recall_update") end
    local on_done = opts and opts.on_done
    check_on_done(on_done, "start_recall_update")
    local body, err = call.encode(self, endpoint, task, opts, "start_recall_update")
    if not body then return nil, err end
    return start(self, endpoint, body, opts, nil, on_done)
  end

  --- Advances every job of the client. Without a timeout (or 0) it does what is ready and
  -- returns; with one it waits until a job ends or the timeout passes. The `on_done`
  -- callbacks run from here.
  -- @tparam[opt=0] number timeout the seconds to wait at most, 0 to 86400
  -- @treturn int how many jobs are still running
  -- @raise when timeout is not a number from 0 to 86400
  function Client:poll(timeout)
    if timeout == nil then timeout = 0 end
    if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 or timeout > 86400 then
      args.bad(1, "poll", "timeout must be a number of seconds from 0 to 86400")
    end
    local r = self._jobs
    if not r then return 0 end
    return poll(r, timeout)
  end

  --- Updates many tasks at once, and waits until every one has an outcome. A task that breaks
  -- a rule gets a ValidationError and the others still go.
  -- @tparam {table,...} tasks the tasks, every index from 1 to the last a task table
  -- @tparam[opt] table opts `concurrency` (16): the tasks in flight at once; `deadline`:
  -- seconds for the whole batch; `on_done`: a `function(res, err, index)` called as each
  -- task ends; `passthrough`; `retry_budget`: the retries the batch may spend (default
  -- `max(concurrency, 10% of the tasks)`; a success earns 0.1 back)
  -- @treturn {table,...} one result per task, in order: `{ res = res }` or `{ err = err }`
  -- @raise when tasks is not a list of task tables, or opts is not a table or has an unknown name
  -- or a bad value
  function Client:update_recall_tasks(tasks, opts)
    local fname = "update_recall_tasks"
    if type(tasks) ~= "table" then args.bad(1, fname, "table expected, got " .. type(tasks)) end
    opts = args.options(opts, BATCH_OPTS, 2, fname)
    local n = task_count(tasks, fname)
    local conc = opts.concurrency or 16
    if type(conc) ~= "number" or conc ~= floor(conc) or conc < 1 or conc > 10000 then
      args.bad(2, fname, "concurrency must be a whole number from 1 to 10000")
    end
    local dl = opts.deadline
    if dl ~= nil and (type(dl) ~= "number" or dl ~= dl or dl <= 0 or dl > 86400) then
      args.bad(2, fname, "deadline must be seconds from 0 to 86400")
    end
    local rb = opts.retry_budget
    if rb ~= nil and (type(rb) ~= "number" or rb ~= rb or rb < 0) then
      args.bad(2, fname, "retry_budget must be a number >= 0")
    end
    local p = opts.passthrough
    if p ~= nil and type(p) ~= "boolean" then args.bad(2, fname, "passthrough must be a boolean") end
    local user_done = opts.on_done
    check_on_done(user_done, fname)
    local budget = call.budget(rb or max(conc, ceil(n / 10)))
    local copts = { passthrough = p, deadline_at = dl and now() + dl or nil, deadline = dl }
    local results = {}

    -- A task's outcome, and the caller's callback (none once the client is closed).
    local function settle(i, res, err)
      results[i] = res and { res = res } or { err = err }
      if user_done and not self.closed then
        local ok, why = pcall(user_done, res, err, i)
        if not ok then _M.callback_raised(self, why, { index = i }) end
      end
    end

    local function body_of(i)
      return call.encode(self, endpoint, tasks[i], copts, fname)
    end

    -- Tasks the batch never got to (the client closed): that error, without a callback.
    local function close_out()
      for i = 1, n do
        if not results[i] then results[i] = { err = call.closed_error() } end
      end
      return results
    end

    if self.closed then return close_out() end

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
        while nexti < n and not self.closed do
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
      if self.closed then return close_out() end
      for i = 1, n do
        if not results[i] then
          results[i] = { err = errors.TransportError.new{ reason = "other", attempts = 0,
            message = "the batch's light thread ended before this task" } }
        end
      end
      return results
    end

    -- Elsewhere: jobs on the client's runner, at most conc of them not ended.
    local r = runner_of(self)
    local started = {}   -- index -> its job, until its outcome is settled
    local nexti, active = 0, 0
    local function on_end(res, err, job)
      active = active - 1
      started[job.index] = nil
      settle(job.index, res, err)
    end
    while not self.closed do
      while active < conc and nexti < n and not self.closed do
        nexti = nexti + 1
        local i = nexti
        local body, err = body_of(i)
        if body then
          local job
          job, err = start(self, endpoint, body, copts, budget, on_end)
          if job then
            job.index = i
            started[i] = job
            active = active + 1
          else
            settle(i, nil, err)
          end
        else
          settle(i, nil, err)
        end
      end
      if active == 0 and nexti >= n then break end
      if not self.closed then poll(r, 1) end
    end
    if self.closed then
      -- A callback closed the client: jobs that ended keep their outcome, no callback runs.
      for i, job in pairs(started) do
        if job.state == DONE then results[i] = job.res and { res = job.res } or { err = job.err } end
      end
      return close_out()
    end
    return results
  end
end

--- Ends every job of a closed client: no callback runs; the multi handle is freed.
-- @local
function _M.close(client)
  local r = client._jobs
  if not r then return end
  r.closed = true
  local live = {}
  for _, job in pairs(r.by_id) do live[#live + 1] = job end
  for job in pairs(r.sending) do live[#live + 1] = job end
  for i = r.qhead, r.qtail do live[#live + 1] = r.queue[i] end
  for i = 1, r.wakes.n do live[#live + 1] = r.wakes.job[i] end
  for i = 1, r.deadlines.n do live[#live + 1] = r.deadlines.job[i] end
  for i = 1, #live do
    stop(r, live[i], errors.TransportError.new{ reason = "closed",
      message = "the client was closed while the job ran" })
  end
  r.queue, r.qhead, r.qtail = {}, 1, 0
  r.ended, r.ehead, r.etail = {}, 1, 0
  if r.multi then r.multi:close() end
  r.multi = nil
end

return _M
