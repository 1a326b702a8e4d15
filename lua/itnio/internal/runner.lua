--- Private to lua-itnio. The runner: jobs that run while the host's own loop goes on, one
-- runner per client, made on its first job. It drives the call's decision
-- (itnio.internal.call) over a transport, the same decision the blocking call makes; only
-- the waiting differs: retry backoff, `Retry-After`, the skew fix's resend, the rate
-- limit's slots and deadlines are timers that `poll` checks, never sleeps.
--
--     local job, err = runner.start(client, endpoint, body, opts, on_done)    a job
--     local ok, err = runner.start_task(r, batch, i)                            a batch's task
--     runner.poll(client, timeout) -> jobs not done      runner.close(client)
--
-- A transport that waits asynchronously (the curl transport's multi handle) runs every job
-- at once: `poll(0)` does what the sockets have ready and returns. A transport function of
-- the caller's is called from `poll`, as blocking as it is.
--
-- One path for every job. A job is a table (its call, its state, its callback) in exactly
-- one place while it lives: the ready queue, the timers, the paced slot, on the wire (its
-- transfer runs) or sending (a function of the caller's runs it); the runner's `jobs` set
-- knows them all, so `close` ends everything from one place. A batch's task sent straight
-- from its table by the core (`submit_task`, when no per-attempt observer needs a table: no
-- logger, on_call, rate limit or breaker) is on the wire as its batch and index, and it
-- becomes a job like any other only when its outcome is not a plain success.
--
-- Whatever a callback, a logger or a transport function does (raise, poll, start or cancel
-- jobs, close the client, yield and never come back), a job ends once: the runner takes one
-- thing out of a queue before it calls out, so nothing is held in a local that a coroutine
-- left behind would lose.
local errors  = require "itnio.errors"
local compat  = require "itnio.internal.compat"
local call    = require "itnio.internal.call"
local outcome = require "itnio.internal.outcome"
local secrets = require "itnio.internal.secrets"
local queue   = require "itnio.internal.queue"
local heap    = require "itnio.internal.heap"
local options = require "itnio.internal.options"
local store   = require "itnio.internal.store"

local pcall, pairs, setmetatable, getmetatable = pcall, pairs, setmetatable, getmetatable
local huge, min, max = math.huge, math.min, math.max
local format = string.format
local now = compat.now

options.mine()

local _M = {}

-- WAITING: ready to go, waiting for a timer, or between two attempts (its outcome being
-- decided). SENDING: a transport function of the caller's runs its attempt (and may yield).
-- ON_WIRE: its transfer runs. ASKING, TELLING: its round trip to the store before or after
-- an attempt runs (on the multi handle, beside the transfers). DONE: ended.
local WAITING, SENDING, ON_WIRE, ASKING, TELLING, DONE = 1, 2, 3, 4, 5, 6

-- Transfers on a client's multi handle at once; more jobs wait in the ready queue, in order.
-- Past a few hundred, libcurl's own bookkeeping grows with the square of the transfers.
local MAX_TRANSFERS = 256
-- Attempts one poll starts at most, so that a poll stays short whatever the number of jobs.
local SLICE = 128

local Job = {}
local job_mt = { __index = Job, __name = "itnio.Job" }

function job_mt.__tostring(job)
  local state = job.state == DONE and (job.res and "done" or "failed")
    or (job.state == WAITING and "waiting to send" or "in flight")
  return format("itnio.Job(%s, attempt %d)", state, job.call.attempt)
end

--- Whether the job has ended (with a result or an error).
function Job:done()
  return self.state == DONE
end

--- What the blocking call would have returned for the job's body: res, or nil, err.
function Job:result()
  if self.state ~= DONE then
    options.bad("job:result", 1, "the job is not done yet; call client:poll() until job:done()")
  end
  if self.res then return self.res end
  return nil, self.err
end

-- ---------------------------------------------------------------------------------------
-- The runner of a client

-- The runner of a client, made on its first job with the transport jobs ride there; or nil,
-- err (inside nginx, jobs would block the worker unless the client rides curl or a function).
local function runner_of(client)
  local r = client._runner
  if r then return r end
  local t, err = client:_transport("jobs")
  if not t then return nil, err end
  local async = t.submit ~= nil
  local st = client.state
  r = { client = client, transport = t, async = async, live = 0, finished = 0, transfers = 0,
        store = async and st.before_command and st or nil, limited = client.config.rate ~= nil,
        fast = async and not (client.config.logger or client.config.on_call or client.asks),
        jobs = {}, ready = queue.new(), done = queue.new(), timers = heap.new("wpos"),
        deadlines = heap.new("dpos"), wire = {}, wire_id = {}, wire_i = {}, wire_t0 = {} }
  client._runner = r
  return r
end
_M.runner_of = runner_of

local function enqueue(r, job)
  local c = job.call
  if c.waited and not c.pace_t0 then c.pace_t0 = now() end   -- its wait for its turn starts
  r.ready:push(job)
end

-- A new job for call c, queued; its end goes to on_done, or to its batch (owner, index).
local function new_job(r, c, on_done, owner, index)
  local job = setmetatable({ call = c, state = WAITING, on_done = on_done, owner = owner, index = index,
                             runner = r }, job_mt)
  r.jobs[job] = true
  r.live = r.live + 1
  if c.deadline_at then r.deadlines:push(job, c.deadline_at) end
  return job
end

-- A transfer is on the wire under key k: entry is its job, or a task's batch.
local function on_wire(r, k, id, entry)
  r.wire[k], r.wire_id[k] = entry, id
  r.transfers = r.transfers + 1
end

-- (wire[k] is the truth: wire_id, wire_i and wire_t0 are written again when the key is next
-- used, and read only while wire[k] is set)
local function off_wire(r, k)
  r.wire[k] = nil
  r.transfers = r.transfers - 1
end

local function finish(r, job, res, err)
  if job.state == DONE then return end
  res, err = job.call:finish(res, err)
  job.state, job.res, job.err = DONE, res, err
  r.jobs[job] = nil
  r.timers:remove(job)
  r.deadlines:remove(job)
  r.live = r.live - 1
  r.finished = r.finished + 1
  local owner = job.owner
  if owner then owner:ended(job.index, res, err) end
  if r.closed then return end   -- after close, no callback runs
  if owner then
    if owner.on_done then r.done:push(owner, job.index) end
  elseif job.on_done then
    r.done:push(job)
  end
end

-- Ends a job that has not ended: its request stopped, whatever it was doing.
local function stop(r, job, err)
  if job.state == DONE then return false end
  local c = job.call
  if job.state == ON_WIRE then
    local k = job.key
    if r.transport:cancel(r.wire_id[k]) then c.sent = true end
    off_wire(r, k)
    job.key = nil
  elseif job.state == ASKING or job.state == TELLING then   -- (its reply will find no one)
    off_wire(r, job.key)
    job.key = nil
    if r.asking == job then r.asking = nil end
  elseif job.state == SENDING then   -- the caller's transport has the request: it may have left
    c.sent = true
  end
  err.sent, err.attempts = c.sent, c.attempt
  finish(r, job, nil, err)
  return true
end

local function schedule(r, job, delay)
  local c = job.call
  if r.closed then return finish(r, job, nil, outcome.closed_error(c.attempt, c.sent)) end
  job.state = WAITING
  c.slept = c.slept + delay
  if delay > 0 then r.timers:push(job, now() + delay) else enqueue(r, job) end
end

-- A round trip to the store for the job (state ASKING or TELLING), on the multi handle.
local function to_store(r, job, state, cmd)
  local k = r.transport:redis(r.store.rd, cmd)
  job.state, job.key, job.cmd = state, k, cmd
  on_wire(r, k, false, job)
end

-- The end of an attempt's decision: done, stopped, or a retry later.
local function conclude(r, job, what, x)
  if job.state == DONE then return end
  if what == "done" then finish(r, job, x)
  elseif what == "stop" then finish(r, job, nil, x)
  else schedule(r, job, x) end
end

-- The decision after an attempt: judge, then the state records the facts (a round trip to
-- the store, when there is one and it is usable: the job waits for it), then settle. The
-- logger the call may hear can end the job meanwhile (a close, a cancel, a poll that passed
-- its deadline): an ended job stays ended.
local function advance(r, job, ans, fail)
  local c = job.call
  local _, err, what, x, facts = c:judge(ans, fail)
  local took = true
  if facts then
    local st = r.store
    if st and st:needs(job.call, facts) and st:usable(now()) then
      job.judged = { ans, err, what, x, facts }
      return to_store(r, job, TELLING, st:after_command(c, facts))
    end
    if st then took = st:skip_after(c, facts, now()) else took = r.client.state:after(c, facts, now()) end
  end
  what, x = c:settle(ans, err, what, x, facts, took)
  conclude(r, job, what, x)
end

-- Starts the job's next attempt: submitted to an asynchronous transport, or sent through a
-- transport function of the caller's (called right here: as blocking as that function is,
-- and it may yield; the job is SENDING until it returns, and its answer is dropped if the
-- job ended meanwhile).
local function launch(r, job)
  local method, url, lines, body, timeout, ct = job.call:begin()
  if not method then return finish(r, job, nil, url) end
  local t = r.transport
  if r.async then
    local id, k = t:submit(method, url, lines, body, timeout, ct)
    if not id then return advance(r, job, nil, k) end
    job.state, job.key = ON_WIRE, k
    on_wire(r, k, id, job)
    return
  end
  job.state = SENDING
  local ans, fail = t:send(method, url, lines, body, timeout, ct)
  if job.state ~= SENDING then return end
  job.state = WAITING
  return advance(r, job, ans, fail)
end

-- A batch's task sent by the core from its table ended: a plain success is its result at
-- once (on this path no breaker or observer hears of attempts: the budget earns, and that is
-- all a plain success records); anything else makes it a job, its first attempt over.
-- The state's word before an attempt (c:before, or the store's reply), acted on: the job
-- goes, waits for its booked slot (holding the queue: nothing else starts before it), asks
-- again later, or ends.
local function act(r, job, v, x)
  if v == "stop" then return finish(r, job, nil, x) end
  if v == "go" then return launch(r, job) end
  r.paced, r.paced_at, job.ask = job, now() + x, v == "again"
end

-- A job due to go: the state's word first (with a store, a round trip on the multi handle:
-- under a rate limit the queue waits for its verdict, one booking at a time).
local function dispatch(r, job)
  local st, c = r.store, job.call
  if not st then return act(r, job, c:before()) end
  local v, x = c:before(true)   -- (closed? the deadline? it asks the store nothing: below)
  if v == "stop" then return act(r, job, v, x) end
  local t = now()
  local own
  own, x = st:own(c, t)
  if own then return act(r, job, c:verdict(own, x)) end
  if r.limited then r.asking = job end
  return to_store(r, job, ASKING, st:before_command(c, t))
end

-- The store's reply for job (or the failure to get one).
local function store_reply(r, job, value, fail)
  local st, c = r.store, job.call
  if not value and fail.reason == "closed" and not job.anew then   -- a closed connection: once
    job.anew = true                                                  -- more, on a new one
    return to_store(r, job, job.state, job.cmd)
  end
  if not value and store.noscript(fail) and job.cmd[1] == "EVALSHA" then   -- scripts flushed: EVAL
    return to_store(r, job, job.state, store.with_eval(job.cmd))
  end
  job.anew = nil
  local t = now()
  if job.state == ASKING then
    job.state, job.key = WAITING, nil
    if r.asking == job then r.asking = nil end
    return act(r, job, c:verdict(st:before_reply(c, value, fail, t)))
  end
  job.state, job.key = WAITING, nil
  local j = job.judged
  job.judged = nil
  local took = st:after_reply(c, j[5], value, fail, t)
  conclude(r, job, c:settle(j[1], j[2], j[3], j[4], j[5], took))
end

local function task_ended(r, owner, i, t0, ans, fail, body)
  r.live = r.live - 1   -- (the task is done, or it lives on as a job)
  if ans and ans.plain then
    r.finished = r.finished + 1   -- (a poll with a timeout returns: the batch has room again)
    owner.budget:earn()
    owner:ended(i, outcome.plain_result(r.client, ans, 1))
    if owner.on_done then r.done:push(owner, i) end
    return
  end
  local c = call.new(r.client, owner.endpoint, body, owner.opts, owner.budget)
  c:began(t0)
  advance(r, new_job(r, c, nil, owner, i), ans, fail)
end

-- Room on the wire for one more transfer.
local function room(r)
  return not r.async or r.transfers < MAX_TRANSFERS
end

-- Does what is ready without waiting, a bounded amount of it: deadlines that passed end
-- their jobs, timers that are due queue theirs, at most SLICE attempts start (at most
-- MAX_TRANSFERS on the wire), finished transfers are read and decided. Every call out (a
-- transport function, a logger) may close the client: then it stops.
local function step(r)
  local t = now()
  while true do
    local job, at = r.deadlines:top()
    if not job or at > t then break end
    stop(r, job, job.call:deadline_error(job.state ~= WAITING))
  end
  while true do
    local job, at = r.timers:top()
    if not job or at > t then break end
    r.timers:remove(job)
    enqueue(r, job)
  end
  local slice = SLICE
  local paced = r.paced   -- the job whose slot is booked (or that asks again): first, when due
  if paced then
    if r.paced_at > t then
      slice = 0
    else
      r.paced = nil
      if paced.state == WAITING then
        slice = slice - 1
        if paced.ask then dispatch(r, paced) else launch(r, paced) end
        if r.closed then return end
      end
    end
  end
  while slice > 0 and room(r) and not r.paced and not r.asking do
    local job = r.ready:pop()
    if not job then break end
    if job.state == WAITING then
      slice = slice - 1
      dispatch(r, job)
      if r.closed then return end
    end
  end
  if r.transfers == 0 then return end
  local tr, wire = r.transport, r.wire
  while true do
    local k, ans, fail, body = tr:ready()
    if not k then break end
    local entry = wire[k]
    if entry then
      if getmetatable(entry) ~= job_mt then
        local i, t0 = r.wire_i[k], r.wire_t0[k]
        off_wire(r, k)
        task_ended(r, entry, i, t0, ans, fail, body)
      elseif entry.state == ASKING or entry.state == TELLING then
        off_wire(r, k)
        store_reply(r, entry, ans, fail)
      else
        off_wire(r, k)
        entry.state, entry.key = WAITING, nil
        advance(r, entry, ans, fail)
      end
      if r.closed then return end
    end
  end
end

-- The callbacks of the jobs that ended, one at a time out of the queue (a callback may
-- poll, start jobs, close the client, or yield and never come back).
local function deliver(r)
  while not r.closed do
    local a, i = r.done:pop()
    if not a then return end
    if i then
      a:notify(i)
    else
      local ok, why = pcall(a.on_done, a.res, a.err, a)
      if not ok then r.client:_callback_raised(why, { attempt = a.call.attempt }) end
    end
  end
end

--- Seconds until the runner is due with no I/O: 0 when work is ready now, huge when only
-- the sockets can bring any.
-- @tparam table r the runner
function _M.due(r)
  if not r.done:empty() then return 0 end
  if not r.paced and not r.asking and not r.ready:empty() and room(r) then return 0 end
  local t, soonest = now(), huge
  if r.paced then soonest = r.paced_at - t end
  local _, at = r.timers:top()
  if at then soonest = min(soonest, at - t) end
  _, at = r.deadlines:top()
  if at then soonest = min(soonest, at - t) end
  return soonest
end

-- Waits at most `seconds` for a socket, libcurl's own timer, a timer or a deadline.
local function wait(r, seconds)
  seconds = min(seconds, _M.due(r))
  if seconds <= 0 then return end
  if r.transfers > 0 then r.transport:wait(seconds) else compat.sleep(seconds) end
end

--- Advances every job of the runner: how many are not done. timeout: seconds (0: never
-- waits; else until a job ends, or the time passes).
-- @tparam table r the runner
-- @tparam number timeout seconds
function _M.run(r, timeout)
  local until_t = timeout > 0 and now() + timeout or nil
  while not r.closed do
    local finished0 = r.finished
    step(r)
    deliver(r)
    if r.finished > finished0 or r.live == 0 or not until_t or r.closed then break end
    local left = until_t - now()
    if left <= 0 then break end
    wait(r, left)
  end
  return r.live
end

--- Advances every job of the client (see run); 0 when it has none.
-- @tparam table client the client
-- @tparam number timeout seconds
function _M.poll(client, timeout)
  local r = client._runner
  if not r then return 0 end
  return _M.run(r, timeout)
end

--- For a host's own event loop: the descriptor that becomes readable when the client's jobs
-- have work (the multi handle's epoll set: its transfers and its store connection), made
-- now if need be; nil where there is none (the poll(2) build; a transport function of the
-- caller's, whose jobs run inside poll), and why.
-- @tparam table client the client
function _M.pollfd(client)
  if client.closed then return nil, "the client is closed" end
  local r, err = runner_of(client)
  if not r then return nil, errors.text(err) end
  if not r.async then return nil, "this client's jobs ride a transport with no descriptor" end
  local ok, fail = r.transport:open()
  if not ok then return nil, fail.message end
  local fd = r.transport:fd()
  if not fd then return nil, "this build waits with poll(2), which has no one descriptor" end
  return fd
end

--- For a host's own event loop: the seconds until poll is due with no I/O (0: now), or nil
-- when nothing waits on time (no job, or only the sockets can bring news).
-- @tparam table client the client
function _M.timeout(client)
  local r = client._runner
  if not r or r.closed or r.live == 0 and r.done:empty() then return nil end
  local s = _M.due(r)
  if r.async and r.transfers > 0 then
    local c = r.transport:timeout()
    if c and c < s then s = c end
  end
  if s == huge then return nil end
  return max(0, s)
end

-- The runner a job can start on: the client's, with its multi handle made; or nil, err.
local function open(client)
  if client.closed then return nil, outcome.closed_error() end
  local r, err = runner_of(client)
  if not r then return nil, err end
  if r.async then
    local ok, fail = r.transport:open()   -- the multi handle, made now: a failure is told here
    if not ok then
      return nil, errors.TransportError.new{ reason = fail.reason, message = fail.message, attempts = 0 }
    end
  end
  return r
end

--- A new job for a body, queued (poll starts it): the job, or nil, err (a TransportError when
-- the client is closed or no job can start: no descriptor left for the multi handle; a
-- ConfigError inside nginx, where jobs on libcurl would block the worker).
-- @tparam table client the client
-- @tparam table endpoint the endpoint
-- @tparam string body the body
-- @tparam[opt] table opts the call's options (deadline)
-- @tparam[opt] function on_done on_done(res, err, job)
function _M.start(client, endpoint, body, opts, on_done)
  local r, err = open(client)
  if not r then return nil, err end
  local job = new_job(r, call.new(client, endpoint, body, opts), on_done)
  enqueue(r, job)   -- nothing leaves here: poll starts it
  return job
end

--- The runner a batch rides, or nil, err (as start).
-- @tparam table client the client
function _M.open(client)
  return open(client)
end

--- Starts task i of a batch: true, or nil, err (the task breaks a rule; no transfer could
-- start; the deadline passed). The batch is an owner: `endpoint`, `list` (the tasks),
-- `opts` (the calls' options: deadline, deadline_at), `passthrough`, `budget`, and
-- `ended(i, res, err)` (in poll, when the task ends) and `notify(i)` (after it, its
-- callback's turn).
-- @tparam table r the runner
-- @tparam table owner the batch
-- @tparam int i the task's index
function _M.start_task(r, owner, i)
  local client, e = r.client, owner.endpoint
  if client.closed then return nil, outcome.closed_error() end
  local ready = r.ready
  if not (r.fast and r.transfers < MAX_TRANSFERS and ready.head > ready.tail) then
    local body, err = call.encode(e, owner.list[i], owner.passthrough)
    if not body then return nil, err end
    enqueue(r, new_job(r, call.new(client, e, body, owner.opts, owner.budget), nil, owner, i))
    return true
  end
  local t, timeout, at = now(), client.config.timeout, owner.opts.deadline_at
  if at then
    if at <= t then return nil, outcome.deadline_error(owner.opts.deadline, 0, false, false) end
    if at - t < timeout then timeout = at - t end
  end
  local sig = secrets.signature(client, call.epoch_second(client))
  local tr = r.transport
  local id, k, errs = tr:submit_task(e.method, client.urls[e.name], sig.lines, timeout,
                                     client.config.connect_timeout, e.name, owner.list[i], owner.passthrough)
  if not id then
    if k == false then return nil, errors.validation(errs, errs.truncated, e.noun) end
    return nil, errors.TransportError.new{ reason = k.reason, message = k.message, attempts = 0 }
  end
  on_wire(r, k, id, owner)
  r.wire_i[k], r.wire_t0[k] = i, t
  r.live = r.live + 1
  return true
end

--- Stops the job. It ends with a TransportError whose `reason` is `"cancelled"` (its `sent`
-- says whether any byte of it left); its `on_done` runs in the next `poll`.
function Job:cancel()
  return stop(self.runner, self, errors.TransportError.new{ reason = "cancelled",
    message = "the job was cancelled" })
end

--- Ends every job of a closed client, tasks of a batch on the wire too: no callback runs.
-- (The client closes its transports.)
-- @tparam table client the client
function _M.close(client)
  local r = client._runner
  if not r then return end
  r.closed = true
  for k, entry in pairs(r.wire) do
    if getmetatable(entry) ~= job_mt then   -- a batch's task: its batch hears it ended
      local sent = r.transport:cancel(r.wire_id[k])
      local i = r.wire_i[k]
      off_wire(r, k)
      r.live = r.live - 1
      entry:ended(i, nil, outcome.closed_error(1, sent))
    end
  end
  for job in pairs(r.jobs) do
    stop(r, job, errors.TransportError.new{ reason = "closed",
      message = "the client was closed while the job ran" })
  end
  r.paced = nil
  r.ready:clear()
  r.done:clear()
end

return _M
