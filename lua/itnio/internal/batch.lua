--- Private to lua-itnio. The batch: many bodies of one endpoint, at most `concurrency` in
-- flight, one result each, in order. Two drivers, one set of rules (the argument checks,
-- the callback policy, what a close does, the retry budget):
--
--   outside nginx, the client's runner (itnio.internal.runner): the multi handle, or a
--     transport function of the caller's;
--   inside nginx, ngx.thread light threads, each running calls on the cosocket transport.
--
-- The client's batch_<endpoint> methods call run.
local errors  = require "itnio.errors"
local compat  = require "itnio.internal.compat"
local call    = require "itnio.internal.call"
local outcome = require "itnio.internal.outcome"
local runner  = require "itnio.internal.runner"
local options = require "itnio.internal.options"

local type, pcall, next, rawget, setmetatable = type, pcall, next, rawget, setmetatable
local min, max, ceil = math.min, math.max, math.ceil
local format = string.format
local now = compat.now
local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

options.mine()

local _M = {}

local OPTS = options.set{ "concurrency", "deadline", "on_done", "passthrough", "retry_budget" }

-- The number of bodies in a list, checked before anything is sent: every index from 1 to the
-- last holds a table (keys that are not positive whole numbers, such as table.pack's n, are
-- not bodies). Read raw, as the core reads a body.
local function count(list, fname)
  local n, seen = 0, 0
  for k, v in next, list do
    if type(k) == "number" and k >= 1 and k % 1 == 0 then
      if type(v) ~= "table" then
        options.bad(fname, 1, format("tasks[%d] is a %s, not a task table", k, type(v)))
      end
      seen = seen + 1
      if k > n then n = k end
    end
  end
  if seen ~= n then
    for i = 1, seen + 1 do
      if rawget(list, i) == nil then
        options.bad(fname, 1, format("tasks[%d] is nil: the list has a hole (every task from 1 to "
          .. "the last must be there)", i))
      end
    end
  end
  return n
end

-- The arguments, checked; raises naming fname (a programming error).
local function check(list, opts, fname)
  if type(list) ~= "table" then options.bad(fname, 1, "table expected, got " .. type(list)) end
  opts = options.check(opts, OPTS, fname, 2)
  local n = count(list, fname)
  local conc = opts.concurrency or 16
  if not options.is_number(conc, 1, 10000, true) then
    options.bad(fname, 2, "concurrency must be a whole number from 1 to 10000")
  end
  local dl = opts.deadline
  if dl ~= nil and not (options.is_number(dl, 0, 86400) and dl > 0) then
    options.bad(fname, 2, "deadline must be seconds from 0 to 86400")
  end
  local rb = opts.retry_budget
  if rb ~= nil and not options.is_number(rb, 0, math.huge) then
    options.bad(fname, 2, "retry_budget must be a number >= 0")
  end
  local p = opts.passthrough
  if p ~= nil and type(p) ~= "boolean" then options.bad(fname, 2, "passthrough must be a boolean") end
  if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
    options.bad(fname, 2, "opts.on_done must be a function")
  end
  return n, conc, opts
end

-- A batch under way: the owner of its tasks, as the runner knows it (runner.start_task).
local Batch = {}
Batch.__index = Batch

-- Task i ended on the runner (in poll): its result; its callback comes after (notify).
function Batch:ended(i, res, err)
  self.results[i] = res and { res = res } or { err = err }
  self.active = self.active - 1
end

-- Task i ended on a light thread: its result, then its callback.
function Batch:settle(i, res, err)
  self.results[i] = res and { res = res } or { err = err }
  self:notify(i)
end

-- Task i's callback (none once the client is closed). Never raises.
function Batch:notify(i)
  local on_done, client = self.on_done, self.client
  if on_done and not client.closed then
    local r = self.results[i]
    local ok, why = pcall(on_done, r.res, r.err, i)
    if not ok then client:_callback_raised(why, { index = i }) end
  end
end

-- Task i ended before it became a call (it broke a rule, the deadline passed, no transfer
-- could start): on_call hears of it, then its result and its callback.
function Batch:refused(i, err)
  call.event(self.client, self.endpoint, nil, err)
  self:settle(i, nil, err)
end

-- Outside nginx: the runner, at most conc tasks not ended. A close from a callback ends the
-- batch at once; the tasks that had ended keep their outcome.
local function on_runner(b, r, conc)
  local client, n = b.client, b.n
  local nexti = 0
  while not client.closed do
    while b.active < conc and nexti < n and not client.closed do
      nexti = nexti + 1
      b.active = b.active + 1
      local ok, err = runner.start_task(r, b, nexti)
      if not ok then
        b.active = b.active - 1
        b:refused(nexti, err)
      end
    end
    if b.active == 0 and nexti >= n then break end
    if not client.closed then runner.run(r, 1) end
  end
end

-- Inside nginx: light threads on the cosocket transport, at most conc at once.
local function on_threads(b, transport, conc)
  local client, n = b.client, b.n
  local nexti = 0
  local function worker()
    while nexti < n and not client.closed do
      nexti = nexti + 1
      local i = nexti
      local body, err = call.encode(b.endpoint, b.list[i], b.passthrough)
      if body then
        local res
        res, err = call.run(call.new(client, b.endpoint, body, b.opts, b.budget), transport, compat.sleep)
        b:settle(i, res, err)
      else
        b:refused(i, err)
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

--- Runs a batch: results, one per body in order, `{ res = res }` or `{ err = err }`. Raises
-- for a programming error (a list that is not one, a bad option), naming fname; never after
-- the first body is sent.
-- @tparam table client the client
-- @tparam table endpoint its endpoint (itnio.internal.endpoints)
-- @tparam table list the bodies, 1..n
-- @tparam[opt] table opts concurrency, deadline, on_done(res, err, index), passthrough,
-- retry_budget
-- @tparam string fname the method's name, for argument errors
function _M.run(client, endpoint, list, opts, fname)
  local n, conc
  n, conc, opts = check(list, opts, fname)
  local dl = opts.deadline
  local passthrough = opts.passthrough
  if passthrough == nil then passthrough = client.config.passthrough end
  local b = setmetatable({
    client = client, endpoint = endpoint, list = list, n = n, results = {}, active = 0,
    on_done = opts.on_done, passthrough = passthrough,
    budget = client.state:budget(opts.retry_budget or max(conc, ceil(n / 10))),
    opts = { deadline = dl, deadline_at = dl and now() + dl or nil },
  }, Batch)
  if not client.closed then
    local transport, terr = client:_transport("batch")
    if not transport then   -- inside nginx, a phase without cosockets: every body gets that error
      for i = 1, n do b:refused(i, terr) end
      return b.results
    end
    if transport.name == "ngx" then
      on_threads(b, transport, conc)
    else
      local r, err = runner.open(client)
      if not r then
        for i = 1, n do b:refused(i, err) end
        return b.results
      end
      on_runner(b, r, conc)
    end
  end
  -- Bodies the batch never got to (the client was closed): that error, without a callback.
  for i = 1, n do
    if not b.results[i] then b.results[i] = { err = outcome.closed_error() } end
  end
  return b.results
end

return _M
