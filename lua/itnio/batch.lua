--- The batch: many bodies of one endpoint, at most `concurrency` in flight, one result each,
-- in order. Two drivers, one set of rules (the argument checks, the callback policy, what a
-- close does, the retry budget):
--   outside nginx, jobs on the client's runner (itnio.jobs): the multi handle, or a
--     transport function of the caller's;
--   inside nginx, ngx.thread light threads, each running calls on the cosocket transport.
-- Private to the Lua layer: the client's batch_<endpoint> methods call run.
local errors = require "itnio.errors"
local compat = require "itnio.compat"
local call   = require "itnio.call"
local jobs   = require "itnio.jobs"
local args   = require "itnio.args"

local type, pcall, next, rawget, pairs = type, pcall, next, rawget, pairs
local floor, min, max, ceil = math.floor, math.min, math.max, math.ceil
local format = string.format
local now = compat.now
local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = {}

local OPTS = args.set{ "concurrency", "deadline", "on_done", "passthrough", "retry_budget" }

-- The number of bodies in a list, checked before anything is sent: every index from 1 to the
-- last holds a table (keys that are not positive whole numbers, such as table.pack's n, are
-- not bodies). Read raw, as the core reads a body.
local function count(list, fname)
  local n, seen = 0, 0
  for k, v in next, list do
    if type(k) == "number" and k >= 1 and k == floor(k) then
      if type(v) ~= "table" then
        args.bad(1, fname, format("tasks[%d] is a %s, not a task table", k, type(v)), 5)
      end
      seen = seen + 1
      if k > n then n = k end
    end
  end
  if seen ~= n then
    for i = 1, seen + 1 do
      if rawget(list, i) == nil then
        args.bad(1, fname, format("tasks[%d] is nil: the list has a hole (every task from 1 to the last must be there)", i), 5)
      end
    end
  end
  return n
end

-- The options, checked; raises naming fname (a programming error).
local function check(list, opts, fname)
  if type(list) ~= "table" then args.bad(1, fname, "table expected, got " .. type(list), 4) end
  opts = args.options(opts, OPTS, 2, fname, 4)
  local n = count(list, fname)
  local conc = opts.concurrency or 16
  if type(conc) ~= "number" or conc ~= floor(conc) or conc < 1 or conc > 10000 then
    args.bad(2, fname, "concurrency must be a whole number from 1 to 10000", 4)
  end
  local dl = opts.deadline
  if dl ~= nil and (type(dl) ~= "number" or dl ~= dl or dl <= 0 or dl > 86400) then
    args.bad(2, fname, "deadline must be seconds from 0 to 86400", 4)
  end
  local rb = opts.retry_budget
  if rb ~= nil and (type(rb) ~= "number" or rb ~= rb or rb < 0) then
    args.bad(2, fname, "retry_budget must be a number >= 0", 4)
  end
  local p = opts.passthrough
  if p ~= nil and type(p) ~= "boolean" then args.bad(2, fname, "passthrough must be a boolean", 4) end
  if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
    args.bad(2, fname, "opts.on_done must be a function", 4)
  end
  return n, conc, opts
end

-- Outside nginx: jobs on the runner, at most conc not ended (light ones when it can: see
-- itnio.jobs). A close from a callback ends the batch at once; the jobs that had ended keep
-- their outcome.
local function on_runner(b, conc)
  local client, n, results = b.client, b.n, b.results
  local started = {}   -- index -> its job, until its outcome is settled (full jobs only)
  local nexti, active = 0, 0
  local r = jobs.light_runner(client)
  local req = r and { method = b.endpoint.method, url = client.urls[b.endpoint.name],
                      connect_timeout = client.connect_timeout }
  local sink = r and {
    endpoint = b.endpoint, list = b.list, copts = b.copts, budget = b.budget, fname = b.fname,
    ids = {}, id_of = {}, capped = {}, results = results,
  }
  local function on_end(res, err, job)
    active = active - 1
    started[job.index] = nil
    b.settle(job.index, res, err)
  end
  if sink then
    sink.on_end = on_end
    function sink.ended(i, res)   -- a plain success, in poll: the callback comes after
      active = active - 1
      results[i] = { res = res }
    end
    function sink.notify(i)
      b.callback(i, results[i].res, nil)
    end
  end
  while not client.closed do
    while active < conc and nexti < n and not client.closed do
      nexti = nexti + 1
      local i = nexti
      if sink then
        local ok, err = jobs.start_light(r, sink, i, req)
        if ok then active = active + 1 else b.settle(i, nil, err) end
      else
        local body, err = b.body_of(i)
        if body then
          local job
          job, err = jobs.start(client, b.endpoint, body, b.copts, b.budget, on_end)
          if job then
            job.index = i
            started[i] = job
            active = active + 1
          else
            call.event(client, b.endpoint, nil, err)
            b.settle(i, nil, err)
          end
        else
          b.settle(i, nil, err)
        end
      end
    end
    if active == 0 and nexti >= n then break end
    if not client.closed then jobs.poll(client, 1) end
  end
  if client.closed then
    for i, job in pairs(started) do
      if job:done() then results[i] = job.res and { res = job.res } or { err = job.err } end
    end
  end
end

-- Inside nginx: light threads on the cosocket transport, at most conc at once.
local function on_threads(b, conc, transport)
  local client, n = b.client, b.n
  local nexti = 0
  local function worker()
    while nexti < n and not client.closed do
      nexti = nexti + 1
      local i = nexti
      local body, err = b.body_of(i)
      if body then
        local res
        res, err = call.run(call.new(client, b.endpoint, body, b.copts, b.budget), transport, compat.sleep)
        b.settle(i, res, err)
      else
        b.settle(i, nil, err)
      end
    end
  end
  local threads = {}
  for t = 1, min(conc, n) do threads[t] = ngx.thread.spawn(worker) end
  for t = 1, #threads do ngx.thread.wait(threads[t]) end
  if client.closed then return end
  for i = 1, n do
    if not b.results[i] then
      b.results[i] = { err = errors.TransportError.new{ reason = "other", attempts = 0,
        message = "the batch's light thread ended before this task" } }
    end
  end
end

--- Runs a batch: results, one per body in order, { res = res } or { err = err }. Raises for
-- a programming error (a list that is not one, a bad option), naming fname; never after the
-- first body is sent.
-- @tparam table client the client
-- @tparam table endpoint its endpoint (itnio.endpoints)
-- @tparam table list the bodies, 1..n
-- @tparam[opt] table opts concurrency, deadline, on_done(res, err, index), passthrough, retry_budget
-- @tparam string fname the method's name, for argument errors
function _M.run(client, endpoint, list, opts, fname)
  local n, conc
  n, conc, opts = check(list, opts, fname)
  local dl, user_done = opts.deadline, opts.on_done
  local results = {}
  local b = {
    client = client, endpoint = endpoint, n = n, results = results, list = list, fname = fname,
    budget = client.state:budget(opts.retry_budget or max(conc, ceil(n / 10))),
    copts = { passthrough = opts.passthrough, deadline_at = dl and now() + dl or nil, deadline = dl },
  }
  -- The caller's callback for body i (none once the client is closed).
  function b.callback(i, res, err)
    if user_done and not client.closed then
      local ok, why = pcall(user_done, res, err, i)
      if not ok then client:_callback_raised(why, { index = i }) end
    end
  end
  -- A body's outcome, and its callback.
  function b.settle(i, res, err)
    results[i] = res and { res = res } or { err = err }
    b.callback(i, res, err)
  end
  function b.body_of(i)
    local body, err = call.encode(client, endpoint, list[i], b.copts, fname)
    if not body then call.event(client, endpoint, nil, err) end   -- (on_call hears of it)
    return body, err
  end

  if not client.closed then
    local transport, terr = client:_transport("batch")
    if not transport then   -- inside nginx, a phase without cosockets: every body gets that error
      for i = 1, n do b.settle(i, nil, terr) end
      return results
    end
    if transport.name == "ngx" then on_threads(b, conc, transport) else on_runner(b, conc) end
  end
  -- Bodies the batch never got to (the client was closed): that error, without a callback.
  for i = 1, n do
    if not results[i] then results[i] = { err = call.closed_error() } end
  end
  return results
end

return _M
