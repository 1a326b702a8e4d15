--- Jobs: calls that run while the host's own loop goes on. The runner: it drives
-- `itnio.call`'s decision over a transport, the same decision the blocking call makes.
--
--     local job = client:start_recall_update(task, {
--       on_done = function(res, err) end,
--     })
--     while client:poll(0) > 0 do
--       -- the host's frame
--     end
--     local res, err = job:result()
--
-- A transport that can wait asynchronously (the curl transport: `submit` and `ready`, on one
-- multi handle per client) runs every job of the client at once: `poll(0)` does what the
-- sockets have ready and returns. A transport function of the caller's is called from `poll`,
-- as blocking as it is. Retry backoff, `Retry-After`, the skew fix's resend and deadlines
-- are timers that `poll` checks, never sleeps. The batch (`itnio.batch`) runs on jobs outside
-- nginx.
--
-- Whatever a callback, a logger or a transport function of the caller's does (raise, poll,
-- start or cancel jobs, close the client, yield and never come back), a job ends once: the
-- runner takes one thing at a time out of its queues before it calls out, so nothing is
-- held in a local that a coroutine left behind would lose.
-- @module itnio.jobs
local errors = require "itnio.errors"
local compat = require "itnio.compat"
local call   = require "itnio.call"

local pcall, setmetatable, pairs = pcall, setmetatable, pairs
local floor, huge, min = math.floor, math.huge, math.min
local format = string.format
local now = compat.now

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

--- What the blocking call (`client:recall_update`) would have returned for the job's task.
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
-- the queue (ready to go), the retry timers (wakes), paced (the one job whose slot the rate
-- limit booked, until paced_at), by_id (its transfer runs), sending (its transport function
-- runs). A job with a deadline is also in the deadline heap until it ends.

-- The runner of a client, made on its first job with the transport jobs ride there; or nil,
-- err (inside nginx, jobs would block the worker unless the client rides curl or a function).
local function runner_of(client)
  local r = client._jobs
  if r then return r end
  local t, err = client:_transport("jobs")
  if not t then return nil, err end
  r = { client = client, transport = t, async = t.submit ~= nil, count = 0, finished = 0,
        by_id = {}, transfers = 0, queue = {}, qhead = 1, qtail = 0, ended = {}, ehead = 1,
        etail = 0, sending = {}, wakes = heap_new("wpos"), deadlines = heap_new("dpos"),
        light = {}, lended = {}, lhead = 1, ltail = 0 }
  client._jobs = r
  return r
end

-- (Under a rate limit, a job's wait for its turn starts when it is queued ready to send.)
local function enqueue(r, job)
  if job.waited and not job.pace_t0 then job.pace_t0 = now() end
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
  call.ended(job, res, err)
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

-- Ends a job that has not: its request stopped, whatever it was doing.
local function stop(r, job, err)
  if job.state == DONE then return false end
  if job.state == RUNNING and job.id then
    r.by_id[r.transport.key(job.id)] = nil
    r.transfers = r.transfers - 1
    if r.transport:cancel(job.id) then job.sent = true end
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
  job.slept = job.slept + delay
  if delay > 0 then heap_push(r.wakes, job, now() + delay) else enqueue(r, job) end
end

-- The decision after an attempt. The logger it may call can end the job meanwhile (a close,
-- a cancel, a poll that passed its deadline): an ended job stays ended.
local function advance(r, job, resp, terr, raw, reused)
  local what, x = call.outcome(job, resp, terr, raw, reused)
  if job.state == DONE then return end
  if what == "done" then finish(r, job, x)
  elseif what == "stop" then finish(r, job, nil, x)
  else schedule(r, job, x) end
end

-- Starts the job's next attempt: submitted to an asynchronous transport, or sent through a
-- transport function of the caller's (called right here: it is as blocking as that function
-- is, and it may yield; the job is SENDING until it returns, and its answer is dropped if the
-- job ended meanwhile). The job is its own request (itnio.call).
local function launch(r, job)
  local ok, err = call.begin(job)
  if not ok then return finish(r, job, nil, err) end
  local t = r.transport
  if r.async then
    local id, failure = t:submit(job)
    job.headers, job.lines = nil, nil   -- (libcurl copied them) the Sign stays out of the job
    if not id then return advance(r, job, nil, failure) end
    job.state, job.id = RUNNING, id
    r.by_id[t.key(id)] = job
    r.transfers = r.transfers + 1
    return
  end
  job.state = SENDING
  r.sending[job] = true
  local resp, terr, raw, reused = t:send(job)
  job.headers, job.lines = nil, nil
  if job.state ~= SENDING then return end
  r.sending[job] = nil
  return advance(r, job, resp, terr, raw, reused)
end

local function deadline_passed(r, job)
  stop(r, job, call.deadline_error(job, job.state ~= WAITING))
end

-- Does what is ready without waiting, a bounded amount of it: deadlines that passed end
-- their jobs, retry timers that are due queue theirs, at most SLICE attempts start (at most
-- MAX_TRANSFERS on the wire), finished transfers are read and decided. Every call out (a
-- transport function, a logger) may close the client: then it stops.
local function step(r)
  local at = now()
  local d = r.deadlines
  while d.n > 0 and d.at[1] <= at do deadline_passed(r, d.job[1]) end
  local w = r.wakes
  while w.n > 0 and w.at[1] <= at do
    local job = w.job[1]
    heap_remove(w, job)
    enqueue(r, job)
  end
  local budget = SLICE
  local paced = r.paced   -- the job the rate limit booked a slot for: it goes first, when due
  if paced then
    if r.paced_at > at then
      budget = 0
    else
      r.paced = nil
      if paced.state == WAITING then
        call.paced(paced)
        budget = budget - 1
        launch(r, paced)
        if r.closed then return end
      end
    end
  end
  local lim = r.client.rate
  while r.qhead <= r.qtail and budget > 0 and (not r.async or r.transfers < MAX_TRANSFERS) do
    local job = dequeue(r)
    if job.state == WAITING then
      if lim then
        local wait = call.pace(job)
        if wait > 0 then   -- its slot is booked: nothing else starts before it
          r.paced, r.paced_at = job, now() + wait
          break
        end
        call.paced(job)
      end
      budget = budget - 1
      launch(r, job)
      if r.closed then return end
    end
  end
  if r.transfers > 0 then
    local t = r.transport
    while true do
      local id, resp, terr, raw, reused = t:ready()
      if not id then break end
      local k = t.key(id)
      local job = r.by_id[k]
      if job then
        r.by_id[k] = nil
        r.transfers = r.transfers - 1
        job.id = nil
        advance(r, job, resp, terr, raw, reused)
        if r.closed then return end
      else
        local sink = r.light[k]
        if sink then
          r.light[k] = nil
          r.transfers = r.transfers - 1
          _M.light_done(r, sink, id, resp, terr, raw)
          if r.closed then return end
        end
      end
    end
  end
end

-- The callbacks of the jobs that ended, one at a time out of the shared list (a callback may
-- poll, start jobs, close the client, or yield and never come back).
local function deliver(r)
  while r.lhead <= r.ltail and not r.closed do   -- light jobs that ended: sink, index pairs
    local h = r.lhead
    local sink, i = r.lended[h], r.lended[h + 1]
    r.lended[h], r.lended[h + 1] = nil, nil
    if h + 1 >= r.ltail then r.lhead, r.ltail = 1, 0 else r.lhead = h + 2 end
    sink.notify(i)
  end
  while r.ehead <= r.etail and not r.closed do
    local h = r.ehead
    local job = r.ended[h]
    r.ended[h] = nil
    if h >= r.etail then r.ehead, r.etail = 1, 0 else r.ehead = h + 1 end
    local ok, why = pcall(job.on_done, job.res, job.err, job)
    if not ok then r.client:_callback_raised(why, { attempt = job.attempt }) end
  end
end

-- Seconds until something is due (0: work is ready now; huge: nothing but the sockets).
local function next_due(r)
  if r.lhead <= r.ltail then return 0 end
  if r.qhead <= r.qtail and not r.paced and (not r.async or r.transfers < MAX_TRANSFERS) then
    return 0   -- (behind a paced job, the queue waits for its slot: paced_at below)
  end
  local t, soonest = now(), huge
  if r.paced then soonest = r.paced_at - t end
  if r.wakes.n > 0 then soonest = min(soonest, r.wakes.at[1] - t) end
  if r.deadlines.n > 0 then soonest = min(soonest, r.deadlines.at[1] - t) end
  return soonest
end

-- Waits at most `seconds` for a socket, libcurl's own timer, a retry timer or a deadline.
local function wait(r, seconds)
  seconds = min(seconds, next_due(r))
  if seconds <= 0 then return end
  if r.transfers > 0 then
    r.transport:wait(seconds)
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

--- A new job for a body, queued (poll starts it): the job, or nil, err (a TransportError when
-- the client is closed or no job can start: no descriptor left for the multi handle; a
-- ConfigError inside nginx, where jobs on libcurl would block the worker).
-- @local
function _M.start(client, endpoint, body, opts, budget, on_done)
  if client.closed then return nil, call.closed_error() end
  local r, err = runner_of(client)
  if not r then return nil, err end
  if r.async then
    local ok, failure = r.transport:open()   -- the multi handle, made now: a failure is told here
    if not ok then
      return nil, errors.TransportError.new{ reason = failure.reason, message = failure.message, attempts = 0 }
    end
  end
  local job = setmetatable(call.new(client, endpoint, body, opts, budget), job_mt)
  job.state, job.on_done, job.runner = WAITING, on_done, r
  r.count = r.count + 1
  if job.deadline_at then heap_push(r.deadlines, job, job.deadline_at) end
  enqueue(r, job)   -- nothing leaves here: poll starts it
  return job
end

--- Advances every job of the client: how many are not done. timeout: seconds (0: never waits).
-- @local
function _M.poll(client, timeout)
  local r = client._jobs
  if not r then return 0 end
  return poll(r, timeout)
end

-- ---------------------------------------------------------------------------------------
-- Light jobs: a batch's tasks, when the transport waits asynchronously and the client has no
-- logger (whose fields need a call per attempt), no rate limit (a paced attempt waits as a
-- job), no breaker and no on_call (each needs the call), start with no table of their own: the core
-- writes the task straight into a transfer, and a plain success (see call.outcome) is the
-- task's result at once. Any other outcome makes the task a job like any other (its body
-- written anew: the task is still in the batch's list), which call.outcome decides. So the
-- common case costs the result and nothing more; every other takes the one decision.
-- A sink is the batch: endpoint, list, copts, budget, fname, ids (key -> index), id_of (key ->
-- id; a key is the transport's small number for a request in flight), capped (key -> true),
-- on_end (a job's on_done), ended(i, res) (a plain success, in poll) and notify(i) (its
-- callback's turn, after it).

--- The runner a batch's light jobs can ride, or nil (jobs must be full ones here).
-- @local
function _M.light_runner(client)
  if client.logger or client.rate or client.breaker or client.on_call or client.closed then return nil end
  local r = runner_of(client)
  if not (r and r.async) then return nil end
  local ok = r.transport:open()
  return ok and r or nil
end

--- Starts task i of a sink as a light job: true, or nil, err (the task breaks a rule; no
-- transfer could start; the deadline passed).
-- @local
function _M.start_light(r, sink, i, req)
  local client = r.client
  if client.closed then return nil, call.closed_error() end
  local copts = sink.copts
  local timeout, capped = client.timeout, false
  if copts.deadline_at then
    local left = copts.deadline_at - now()
    if left <= 0 then
      return nil, call.deadline_error{ attempt = 0, sent = false, deadline = copts.deadline,
                                       deadline_at = copts.deadline_at, started = now() }
    end
    if left < timeout then timeout, capped = left, true end
  end
  local signed = call.signed(client)
  req.lines, req.timeout = signed.lines, timeout
  local id, x = r.transport:submit_task(req, sink.endpoint.name, sink.list[i], copts.passthrough)
  if not id then
    if id == false then return nil, errors.validation(x, x.truncated, sink.endpoint.noun) end
    return nil, errors.TransportError.new{ reason = x.reason, message = x.message, attempts = 0 }
  end
  local k = r.transport.key(id)
  sink.ids[k], sink.id_of[k] = i, id
  if capped then sink.capped[k] = true end
  r.light[k] = sink
  r.transfers = r.transfers + 1
  r.count = r.count + 1
  return true
end

--- A light job's transfer ended: a plain success is its result; anything else makes it a job.
-- @local
function _M.light_done(r, sink, id, resp, terr, raw)
  local k = r.transport.key(id)
  local i = sink.ids[k]
  sink.ids[k], sink.id_of[k] = nil, nil
  local capped = sink.capped[k]
  if capped then sink.capped[k] = nil end
  local client = r.client
  if resp == true then
    r.count = r.count - 1
    r.finished = r.finished + 1   -- (a poll with a timeout returns: the batch has room again)
    sink.budget:earn()
    sink.ended(i, call.plain_result(client, terr, 1, raw))
    local t = r.ltail
    r.lended[t + 1], r.lended[t + 2] = sink, i
    r.ltail = t + 2
    return
  end
  local body, err = call.encode(client, sink.endpoint, sink.list[i], sink.copts, sink.fname)
  local job = setmetatable(call.new(client, sink.endpoint, body or "", sink.copts, sink.budget), job_mt)
  job.state, job.on_done, job.runner, job.index = RUNNING, sink.on_end, r, i
  job.attempt, job.t0, job.capped = 1, now(), capped
  if job.deadline_at then heap_push(r.deadlines, job, job.deadline_at) end
  if not body then return finish(r, job, nil, err) end   -- (its task was changed meanwhile)
  advance(r, job, resp, terr)
end

--- Stops the job. It ends with a TransportError whose `reason` is `"cancelled"` (its `sent`
-- says whether any byte of it left); its `on_done` runs in the next `poll`.
-- @treturn boolean true if the job was running, false if it had ended already
function Job:cancel()
  return stop(self.runner, self, errors.TransportError.new{ reason = "cancelled",
    message = "the job was cancelled" })
end

--- Ends every job of a closed client: no callback runs. (The client closes its transports.)
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
  if r.paced then live[#live + 1] = r.paced end
  r.paced = nil
  for i = 1, #live do
    stop(r, live[i], errors.TransportError.new{ reason = "closed",
      message = "the client was closed while the job ran" })
  end
  for k, sink in pairs(r.light) do   -- light jobs: their batch tells them closed
    r.transport:cancel(sink.id_of[k])
    sink.ids[k], sink.id_of[k] = nil, nil
    r.count = r.count - 1
  end
  r.light, r.transfers = {}, 0
  r.lended, r.lhead, r.ltail = {}, 1, 0
  r.queue, r.qhead, r.qtail = {}, 1, 0
  r.ended, r.ehead, r.etail = {}, 1, 0
end

return _M
