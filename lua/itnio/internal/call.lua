--- Private to lua-itnio. One call of an endpoint through its attempts: the client's single
-- retry machine, for every way of waiting.
--
--     local c = call.new(client, endpoint, body, opts, budget)
--     local v, x = c:before()     -- the state's word: "go" | "wait", s | "again", s | "stop", err
--     local m, url, lines, body, timeout, ct = c:begin()   -- the request of the next attempt
--       (or nil, err: the client closed, the deadline passed)
--     ... a transport answers it: answer, or nil, failure ...
--     local what, x = c:after(answer, failure)     -- "done", res | "stop", err | "retry", delay
--       (c:judge, the state's after, c:settle: jobs take the three apart around a round trip)
--     return c:finish(res, err)                    -- waited, and the client's on_call
--
-- The state (itnio.internal.state: the client's own, a shared dict, or the store in Redis)
-- is asked before an attempt (the breaker, the rate limit's slot, the clock offset) and told
-- after it (the breaker, the batch's budget, the offset): with a store, one round trip each.
--
-- The request of an attempt is made fresh each time, as six values handed straight to the
-- transport: nothing keeps it, so the Sign is left in no table. The blocking call sleeps a
-- retry's delay (call.run; ngx.sleep inside nginx), a job sets a timer that poll checks
-- (itnio.internal.runner). What an outcome means is itnio.internal.outcome's.
local core     = require "itnio.core"
local errors   = require "itnio.errors"
local compat   = require "itnio.internal.compat"
local secrets  = require "itnio.internal.secrets"
local outcome  = require "itnio.internal.outcome"

local type, pcall, setmetatable = type, pcall, setmetatable
local floor, min, max = math.floor, math.min, math.max
local format = string.format
local now, wall = compat.now, compat.wall

local _M = {}

local PASSTHROUGH = { passthrough = true }

local Call = {}
Call.__index = Call
_M.Call = Call

--- Now in whole seconds on the client's (skew-fixed) clock. Never negative: a server whose
-- Date is before 1970 (a box without a real-time clock) moves the offset, not the sign.
-- @tparam table client the client
function _M.epoch_second(client)
  local sec = floor(wall() + client.state:offset())
  if not (sec >= 0) then sec = 0 end   -- luacheck: ignore 581 (NaN too)
  return sec
end

--- The body of a task, or nil and the ValidationError of every rule it breaks.
-- @tparam table endpoint the endpoint
-- @tparam table task the body, as a table
-- @tparam boolean passthrough send the fields the rules do not know
function _M.encode(endpoint, task, passthrough)
  local body, list = core.encode(endpoint.name, task, passthrough and PASSTHROUGH or nil)
  if not body then return nil, errors.validation(list, list.truncated, endpoint.noun) end
  return body
end

--- A new call. opts: `deadline` (seconds from now; else the client's), `deadline_at` (an
-- absolute time on compat.now's clock, for a batch, with `deadline` its length).
-- @tparam table client the client
-- @tparam table endpoint the endpoint (itnio.internal.endpoints)
-- @tparam string body the body
-- @tparam[opt] table opts as above
-- @tparam[opt] table budget a shared retry budget (a batch's)
function _M.new(client, endpoint, body, opts, budget)
  local t = now()
  local deadline = opts and opts.deadline or client.config.deadline
  local at = opts and opts.deadline_at or (deadline and t + deadline) or nil
  return setmetatable({
    client = client, endpoint = endpoint, body = body, started = t, deadline = deadline,
    deadline_at = at, budget = budget, attempt = 0, retries_left = client.config.max_retries,
    skew_fixed = false, sent = false, reused = false, waited = client.config.rate and 0 or nil, slept = 0,
  }, Call)
end

--- The state's word before the next attempt (a round trip, with a store; nothing to ask
-- without a rate limit, a breaker or a store): "go" | "wait", s (its rate slot is booked: go
-- then) | "again", s (no slot could be booked this close: ask again then) | "stop", err (the
-- client is closed, the deadline passed, the breaker is open). A wait starts its `waited`.
-- @tparam[opt] boolean own_only only the call's own checks (the runner asks a store itself)
function Call:before(own_only)
  local client = self.client
  if client.closed then return "stop", outcome.closed_error(self.attempt, self.sent) end
  local t = now()
  if self.deadline_at and self.deadline_at <= t then return "stop", self:deadline_error(false) end
  if own_only or not client.asks then return "go" end
  return self:verdict(client.state:before(self, t))
end

--- The call's word for the state's verdict (see before): the breaker's "open" ends the call.
-- @tparam string v the state's verdict
-- @tparam number s its seconds
function Call:verdict(v, s)
  if v == "open" then
    return "stop", errors.CircuitOpenError.new{ attempts = self.attempt, sent = self.sent, retry_after = s,
      message = format("the circuit breaker is open: %d failures in a row worth retrying; the next trial "
        .. "in %.1fs", self.client.config.breaker.failures, s) }
  end
  if v == "go" then return "go" end
  if self.waited and not self.pace_t0 then self.pace_t0 = now() end
  return v, s
end

--- The wait for its turn is over (it goes, or it ended): the time it took counts in `waited`.
function Call:paced()
  local t0 = self.pace_t0
  if t0 then
    self.waited = self.waited + (now() - t0)
    self.pace_t0 = nil
  end
end

--- The error of a deadline that passed before the next attempt, or during the last one.
-- @tparam boolean during during the last attempt
function Call:deadline_error(during)
  return outcome.deadline_error(self.deadline, self.attempt, during, self.sent)
end

-- The attempt starts at t with this timeout: counted, and its timeout capped by the deadline.
local function started(c, t, timeout)
  c.attempt = c.attempt + 1
  c.t0 = t
  local at = c.deadline_at
  c.capped = at ~= nil and at - t < timeout   -- a timeout of this attempt is then the deadline's
  if c.capped then timeout = at - t end
  return timeout
end

--- Notes that an attempt began at t outside begin (a batch's task the core sent straight
-- from its table; see itnio.internal.runner).
-- @tparam number t when it began
function Call:began(t)
  started(self, t, self.client.config.timeout)
end

--- Starts the next attempt (before said go): the request, `method, url, header lines, body,
-- timeout, connect_timeout`, signed now; or nil and the error that ends the call before it:
-- the client is closed (from a logger, a callback, a transport: nothing more leaves), the
-- deadline passed (while it waited for its turn).
function Call:begin()
  local client = self.client
  self:paced()
  if client.closed then return nil, outcome.closed_error(self.attempt, self.sent) end
  local t = now()
  if self.deadline_at and self.deadline_at <= t then return nil, self:deadline_error(false) end
  local timeout = started(self, t, client.config.timeout)
  local e = self.endpoint
  local sig = secrets.signature(client, _M.epoch_second(client))
  return e.method, client.urls[e.name], sig.lines, self.body, timeout, client.config.connect_timeout
end

-- The logger's line of an attempt (built only for a logger: this is the hot path).
local function log(c, ans, err, what, x)
  local client, e = c.client, c.endpoint
  local fields = { method = e.method, url = client.urls[e.name], attempt = c.attempt,
    duration = now() - c.t0, status = ans and (ans.status or ans.http_status) or nil,
    error_kind = err and err.kind or nil, retry_in = what == "retry" and x or nil,
    offset = c.skew_fixed and what == "retry" and x == 0 and client.state:offset() or nil }
  if what == "done" then
    client:_log("info", "itnio: " .. e.name .. ": the attempt succeeded", fields)
  else
    client:_log(what == "retry" and "warn" or "error", "itnio: " .. e.name .. ": the attempt failed: "
      .. errors.text(err), fields)
  end
end

--- What an attempt's outcome means, before the state records it: res, err, decide's word and
-- its value, and the facts to record (itnio.internal.outcome: classify, decide, facts).
-- @tparam table|nil ans the transport's answer
-- @tparam table|nil fail its failure, when no answer came
function Call:judge(ans, fail)
  local res, err = outcome.classify(self, ans, fail)
  local what, x
  if res then what, x = "done", res else what, x = outcome.decide(self, err) end
  return res, err, what, x, outcome.facts(self, res, err, what)
end

--- The decision, once the state recorded the facts (took: whether the budget gave a retry):
-- "done", res | "stop", err | "retry", delay; the logger hears of it.
function Call:settle(ans, err, what, x, facts, took)
  what, x = outcome.settle(self, err, what, x, facts, took)
  if self.client.config.logger then log(self, ans, err, what, x) end
  return what, x
end

--- The decision after an attempt: judge, the state's after (a round trip, with a store and
-- something to record), settle.
-- @tparam table|nil ans the transport's answer
-- @tparam table|nil fail its failure, when no answer came
function Call:after(ans, fail)
  local _, err, what, x, facts = self:judge(ans, fail)
  local took = true
  if facts then took = self.client.state:after(self, facts, now()) end
  return self:settle(ans, err, what, x, facts, took)
end

--- Tells the client's on_call of a call that ended (c: the call, nil for a body that never
-- became one: it broke a rule, or no transport could take it). Never raises.
-- @tparam table client the client
-- @tparam table endpoint the endpoint
-- @tparam table|nil res the result
-- @tparam table|nil err the error
-- @tparam[opt] table c the call
function _M.event(client, endpoint, res, err, c)
  local on_call = client.config.on_call
  if not on_call then return end
  local x = res or err
  local ev = {
    endpoint = endpoint.name, outcome = res and "ok" or err.kind,
    code = x.code, http_status = x.http_status, attempts = x.attempts or (c and c.attempt) or 0,
    duration = c and (now() - c.started) or 0,
    waited = c and ((c.waited or 0) + c.slept) or 0, reused = c and c.reused or false,
  }
  local ok, why = pcall(on_call, ev)
  if not ok then client:_callback_raised(why, { callback = "on_call" }) end
end

--- The call's end, as it is handed over: res, or nil, err, with `waited` when the client has
-- a rate limit (the seconds it waited for its turns); on_call hears of it.
-- @tparam table|nil res the result
-- @tparam table|nil err the error
function Call:finish(res, err)
  if self.waited then
    self:paced()
    local x = res or err
    if type(x) == "table" then x.waited = self.waited end
  end
  if self.client.config.on_call then _M.event(self.client, self.endpoint, res, err, self) end
  if res then return res end
  return nil, err
end

--- Runs a call to its end on a transport's blocking send, waiting with sleep(seconds) for its
-- turn and between attempts: res, or nil, err. The blocking call and the nginx path (and its
-- batch) use it.
-- @tparam table c the call
-- @tparam table transport the transport
-- @tparam function sleep sleep(seconds)
function _M.run(c, transport, sleep)
  while true do
    local v, x = c:before()
    if v == "stop" then return c:finish(nil, x) end
    if v ~= "go" then   -- (a deadline that comes first ends the wait: begin then says so)
      if c.deadline_at then x = min(x, max(0, c.deadline_at - now())) end
      sleep(x)
    end
    if v ~= "again" then
      local method, url, lines, body, timeout, ct = c:begin()
      if not method then return c:finish(nil, url) end
      local what, y = c:after(transport:send(method, url, lines, body, timeout, ct))
      if what == "done" then return c:finish(y) end
      if what == "stop" then return c:finish(nil, y) end
      sleep(y)
      c.slept = c.slept + y
    end
  end
end

return _M
