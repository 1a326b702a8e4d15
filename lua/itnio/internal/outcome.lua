--- Private to lua-itnio. What one attempt's outcome means, and what follows from it: three
-- small steps every way of waiting shares (the blocking call, jobs, the batch).
--
--     local res, err = outcome.classify(call, answer, failure)   what the answer means
--     outcome.record(call, res, err)                             what the client learns
--     local what, x = outcome.decide(call, err)                  "retry", delay | "stop", err
--
-- An answer is what every transport gives, in one of two shapes: `{ status, headers, body,
-- reused }`, or a plain success the core recognised, `{ plain = true, message, head,
-- reused }` (HTTP 200, `code` 0, at most a plain `msg` and a null `data`: csrc/xfer.c; the
-- nginx transport gives its headers as a table, `headers`, instead of the raw block);
-- a failure is `{ reason, code, message, sent }` when no answer came.
local errors   = require "itnio.errors"
local core     = require "itnio.core"
local compat   = require "itnio.internal.compat"
local secrets  = require "itnio.internal.secrets"
local httpdate = require "itnio.internal.httpdate"
local json     = require("cjson.safe").new()

local type, tostring, tonumber, setmetatable, rawget, rawset = type, tostring, tonumber, setmetatable,
  rawget, rawset
local floor, min, max, random = math.floor, math.min, math.max, math.random
local find, format = string.find, string.format
local now, wall = compat.now, compat.wall

local _M = {}

-- Failures of the transport worth a retry: no answer came, and the request may go again.
local RETRY_REASON = { connect = true, timeout = true, reset = true }

-- Seconds as a message shows them: whole numbers plainly, any number without raising.
local function seconds_text(n)
  if not (n >= -1e15 and n <= 1e15) then return format("%.3g", n) end   -- huge, inf, nan
  if n == floor(n) then return format("%d", n) end
  return format("%.1f", n)
end

--- The error of a deadline that passed (worth retrying later, not by this call): before
-- attempt n + 1, or `during` attempt n.
-- @tparam number seconds the deadline, in seconds
-- @tparam int attempts the attempts made
-- @tparam boolean during it passed during the last attempt
-- @tparam boolean sent whether any attempt may have reached the server
function _M.deadline_error(seconds, attempts, during, sent)
  return errors.TransportError.new{ reason = "deadline", attempts = attempts, sent = sent == true,
    retryable = true, message = format(during and "deadline of %gs passed during attempt %d"
      or "deadline of %gs passed before attempt %d", seconds, during and attempts or attempts + 1) }
end

--- The error of every call on a closed client.
-- @tparam[opt=0] int attempts the attempts made before the close
-- @tparam[opt=false] boolean sent whether one may have reached the server
function _M.closed_error(attempts, sent)
  return errors.TransportError.new{ reason = "closed", attempts = attempts or 0, sent = sent == true,
    message = "the client is closed (client:close() was called)" }
end

-- ---------------------------------------------------------------------------------------
-- classify

-- A plain success's headers are parsed when first read (most callers never read them): the
-- raw block waits in the result under a key no caller has.
local RAW = setmetatable({}, { __tostring = function() return "itnio.raw_headers" end })
local plain_mt = { __index = function(res, k)
  if k ~= "headers" then return nil end
  local raw = rawget(res, RAW)
  if not raw then return nil end
  local h = core.parse_headers(raw)
  rawset(res, RAW, nil)
  rawset(res, "headers", h)
  return h
end }

--- A plain answer becomes its result in place (the core made the table with room for it):
-- `{ code = 0, message, http_status = 200, attempts }`, its `headers` parsed when first read.
-- @tparam table client the client (for redaction)
-- @tparam table ans the plain answer
-- @tparam int attempts the attempts it took
function _M.plain_result(client, ans, attempts)
  local msg, head = secrets.redact_message(client, ans.message or "success"), ans.head
  ans.plain, ans.head, ans.reused = nil, nil, nil
  ans.code, ans.message, ans.http_status, ans.attempts = 0, msg, 200, attempts
  if head then ans[RAW] = secrets.redact_head(client, head)
  elseif ans.headers then ans.headers = secrets.redact_tree(client, ans.headers) end
  return setmetatable(ans, plain_mt)
end

-- The answer's code as an integer (cjson gives floats on 5.3+: -1.0 must print as -1).
local function integer_code(v)
  if type(v) == "string" and find(v, "^%s*%-?%d+%s*$") then v = tonumber(v) end
  -- a whole number a JSON reader carries exactly (not NaN, not infinite: 1e400 decodes so)
  if type(v) ~= "number" or v ~= floor(v) or not (v >= -9007199254740991 and v <= 9007199254740991) then
    return nil
  end
  return compat.tointeger(v)
end

-- An answer of the long road -> result, or nil, typed error (headers not yet attached).
local function decoded(ans, attempts)
  local status = ans.status
  if status < 200 or status > 299 then
    local h = ans.headers
    return nil, errors.HttpError.new{
      http_status = status, retryable = status == 429 or status >= 500,
      retry_after = httpdate.retry_after(h["retry-after"], h["date"], wall()),
      message = "the server answered HTTP " .. tostring(status),
    }
  end
  local t = json.decode(ans.body)
  if type(t) ~= "table" then
    return nil, errors.DecodeError.new{ http_status = status,
      message = "the answer is not a JSON object (" .. #ans.body .. " bytes)" }
  end
  local code = t.code
  if code == nil then code = t.status end
  code = integer_code(code)
  if code == nil then
    return nil, errors.DecodeError.new{ http_status = status,
      message = "the answer has no status code (neither code nor status)" }
  end
  local msg = t.msg
  if type(msg) ~= "string" then msg = t.reason end
  if type(msg) ~= "string" then msg = t.message end
  if type(msg) ~= "string" then msg = nil end
  if code == 0 then
    local data = t.data
    if data == json.null then data = nil end
    return { code = 0, message = msg or "success", data = data, http_status = status, attempts = attempts }
  end
  return nil, errors.from_code(code, msg, { http_status = status })
end

--- What an attempt's outcome means: the result, or nil and a typed error (its attempts,
-- sent and headers set, its message redacted). It notes on the call that the request was
-- sent and whether a kept-alive connection carried it.
-- @tparam table c the call
-- @tparam table|nil ans the answer
-- @tparam table|nil fail the transport's failure, when no answer came
function _M.classify(c, ans, fail)
  local client = c.client
  if ans then
    c.sent, c.reused = true, ans.reused == true
    if ans.plain then return _M.plain_result(client, ans, c.attempt) end
    local res, err = decoded(ans, c.attempt)
    local headers = secrets.redact_tree(client, ans.headers)
    if res then
      res.headers = headers
      local body = ans.body
      if secrets.holds(client, body) or find(body, "\\", 1, true) then   -- (an escape may spell it)
        res.message = secrets.redact(client, res.message)
        res.data = secrets.redact_tree(client, res.data, 1)
      end
      return res
    end
    err.headers, err.attempts = headers, c.attempt
    err.message = secrets.redact(client, err.message)
    return nil, err
  end
  if fail.sent then c.sent = true end
  if fail.reason == "timeout" and c.capped then
    return nil, _M.deadline_error(c.deadline, c.attempt, true, c.sent)
  end
  return nil, errors.TransportError.new{ reason = fail.reason, code = fail.code, attempts = c.attempt,
    message = secrets.redact(client, fail.message), sent = c.sent,
    retryable = RETRY_REASON[fail.reason] == true }
end

-- ---------------------------------------------------------------------------------------
-- record

-- Outcomes that say nothing of the server: the caller's own ends.
local NOT_EVIDENCE = { deadline = true, closed = true, cancelled = true }

--- What the client is to learn from an attempt, for the state to record (its `after`): the
-- breaker's evidence (`"ok"`, a failure worth retrying the vendor answered, `"fail"`, or one
-- that came with no answer, `"local"`: with a store it is this machine's alone), the batch's
-- budget (`"earn"` after a success, `"take"` for the retry decide wants), and the server's
-- Date after a -16 (the offset; the call is then re-signed and resent at once). nil when there
-- is nothing to record (the common case makes no table).
-- @tparam table c the call
-- @tparam table|nil res the result
-- @tparam table|nil err the error
-- @tparam string what decide's word: "done", "retry" or "stop"
function _M.facts(c, res, err, what)
  local cfg = c.client.config
  local evidence, budget, date
  if cfg.breaker and not (err and NOT_EVIDENCE[err.reason]) then
    if err and err.retryable then
      evidence = err.kind == "TransportError" and "local" or "fail"
    else
      evidence = "ok"   -- (an answer not worth retrying ends a run of failures too)
    end
  end
  if c.budget then
    if res then budget = "earn" elseif what == "retry" then budget = "take" end
  end
  if err and err.kind == "TimestampExpiredError" and not c.skew_fixed then
    date = httpdate.parse(err.headers and err.headers["date"])
  end
  if not (evidence or budget or date) then return nil end
  return { evidence = evidence, budget = budget, date = date }
end

-- ---------------------------------------------------------------------------------------
-- decide

-- The wait before retry n (from 1): exponential backoff with full jitter.
local function backoff(client, n)
  return random() * min(client.config.backoff_cap, client.config.backoff_base * 2 ^ (n - 1))
end

--- What follows a failed attempt, by the call's own limits: "retry", delay, or "stop", err
-- (the reason it stopped added to the message when a limit of the client's stopped it:
-- max_retry_after, the deadline). settle has the last word, once the state has recorded.
-- @tparam table c the call
-- @tparam table err the attempt's error
function _M.decide(c, err)
  if not err.retryable or c.retries_left <= 0 or err.reason == "deadline" then return "stop", err end
  local client = c.client
  local delay = backoff(client, client.config.max_retries - c.retries_left + 1)
  local after = err.retry_after
  if after then
    if after > client.config.max_retry_after then
      err.message = err.message .. format(" (Retry-After %ss is longer than max_retry_after)",
                                          seconds_text(after))
      return "stop", err
    end
    delay = max(delay, after)
  end
  if c.deadline_at and now() + delay >= c.deadline_at then
    err.message = err.message .. format(" (no retry: the deadline of %gs would pass)", c.deadline)
    return "stop", err
  end
  return "retry", delay
end

--- The last word, after the state recorded the facts: a -16 whose Date moved the offset is
-- re-signed and resent at once; a retry the batch's budget did not give (took false) stops.
-- @tparam table c the call
-- @tparam table|nil err the error
-- @tparam string what decide's word
-- @param x decide's delay, or the result or error
-- @tparam table|nil facts what was recorded
-- @tparam boolean took whether the budget gave the retry
function _M.settle(c, err, what, x, facts, took)
  if facts and facts.date and not c.skew_fixed then
    c.skew_fixed = true
    return "retry", 0
  end
  if what ~= "retry" then return what, x end
  if facts and facts.budget == "take" and not took then
    err.message = err.message .. " (no retry: the batch's retry budget is spent)"
    return "stop", err
  end
  c.retries_left = c.retries_left - 1
  return what, x
end

return _M
