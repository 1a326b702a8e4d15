--- One call of an endpoint through its attempts: the client's single retry machine.
--
-- What an attempt's outcome means is decided here, once, for every way of waiting:
--
--   local c = call.new(client, endpoint, body, opts, budget)
--   local ok, err = call.begin(c)   -- the next attempt, signed anew (or the deadline, or closed)
--   ... c is now the request: the transport answers resp, or fails with terr ...
--   local what, x = call.outcome(c, resp, terr)
--     "done",  res    the call succeeded
--     "stop",  err    the call failed for good (typed error, attempts and redaction set)
--     "retry", delay  send again after delay seconds (0: at once, as after the skew fix)
--
-- The blocking call sleeps the delay (call.run), the nginx path ngx.sleeps it (call.run
-- too: compat.sleep yields there), a job sets a timer that poll checks (itnio.jobs).
-- A call is its own request: { method, url, body, timeout, connect_timeout, headers, lines }
-- are fields of it, as every transport takes them (transport/curl.lua says the shapes).
-- Private to the Lua layer. What it keeps outside a call, per client and out of the client
-- table: the secret, and the signature of the current second.
local core     = require "itnio.core"
local errors   = require "itnio.errors"
local compat   = require "itnio.compat"
local httpdate = require "itnio.httpdate"
local json     = require("cjson.safe").new()

local type, tostring, tonumber, error, setmetatable, pcall, rawget, rawset =
  type, tostring, tonumber, error, setmetatable, pcall, rawget, rawset
local floor, min, max, random = math.floor, math.min, math.max, math.random
local sub, find, format = string.sub, string.find, string.format
local now, wall = compat.now, compat.wall

local _M = {}

local CONTENT_TYPE = "application/json;charset=UTF-8"
_M.CONTENT_TYPE = CONTENT_TYPE

-- Secrets live here, keyed by client, not in any table a caller can reach: dumping a client,
-- a job or an error (an inspect(), a debug print) cannot show them.
local secrets = setmetatable({}, { __mode = "k" })

-- The last second's Timestamp and Sign per client, kept out of the client table too.
local signatures = setmetatable({}, { __mode = "k" })

--- Keeps the client's secret where only signing and redaction can read it.
function _M.keep_secret(client, secret)
  secrets[client] = secret
end

--- s with every copy of the client's secret replaced by "<redacted>".
function _M.redact(client, s)
  local secret = secrets[client]
  if type(s) ~= "string" or not secret then return s end
  local i = find(s, secret, 1, true)
  while i do
    s = sub(s, 1, i - 1) .. "<redacted>" .. sub(s, i + #secret)
    i = find(s, secret, i + 10, true)
  end
  return s
end

-- v with the secret redacted in every string, keys included (a decoded answer: a tree).
local function redact_tree(client, v, depth)
  if type(v) == "string" then return _M.redact(client, v) end
  if type(v) ~= "table" or depth > 1000 then return v end
  local moved
  for k, x in pairs(v) do
    local nk, nx = redact_tree(client, k, depth + 1), redact_tree(client, x, depth + 1)
    if nk ~= k then moved = moved or {}; moved[#moved + 1] = { k, nk, nx }
    elseif nx ~= x then v[k] = nx end
  end
  if moved then
    for i = 1, #moved do v[moved[i][1]] = nil end
    for i = 1, #moved do v[moved[i][2]] = moved[i][3] end
  end
  return v
end

--- A success's message and data with the client's secret redacted, when the answer's body
-- may hold it (a body without it and without escapes cannot: its strings are its substrings).
function _M.redact_result(client, res, body)
  local secret = secrets[client]
  if not secret or (not find(body, secret, 1, true) and not find(body, "\\", 1, true)) then return res end
  res.message = _M.redact(client, res.message)
  res.data = redact_tree(client, res.data, 1)
  return res
end

--- The headers of one attempt (a fresh table: a transport may keep what it was given).
function _M.headers(client, ts, sign)
  return { ["Content-Type"] = CONTENT_TYPE, ["Api-Key"] = client.api_key, Timestamp = ts, Sign = sign }
end

-- Now in whole seconds on the client's (skew-fixed) clock. Never negative: a server whose
-- Date is before 1970 (a box without a real-time clock) moves the offset, not the sign.
local function epoch_second(client)
  local sec = floor(wall() + client.state:offset())
  if not (sec >= 0) then sec = 0 end   -- luacheck: ignore 581 (NaN too)
  return sec
end

--- The Timestamp header for now on the client's (skew-fixed) clock.
function _M.timestamp(client)
  return format("%d", epoch_second(client))
end

-- Seconds as a message shows them: whole numbers plainly, any number without raising.
local function seconds_text(n)
  if not (n >= -1e15 and n <= 1e15) then return format("%.3g", n) end   -- huge, inf, nan
  if n == floor(n) then return format("%d", n) end
  return format("%.1f", n)
end

--- The body for task, or nil, ValidationError. A task that is not a table, or a passthrough
-- option that is not a boolean, is a programming error: it raises, naming fname.
function _M.encode(client, endpoint, task, opts, fname)
  if type(task) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. type(task) .. ")", 3)
  end
  local passthrough = client.passthrough
  if opts ~= nil then
    -- The per-call options, checked here, where the caller can be named (not deep inside).
    if type(opts) ~= "table" then
      error("bad argument #2 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
    end
    local p, d = opts.passthrough, opts.deadline
    if p ~= nil and type(p) ~= "boolean" then
      error("bad argument #2 to '" .. fname .. "' (opts.passthrough must be a boolean, got " .. type(p) .. ")", 3)
    end
    if d ~= nil and (type(d) ~= "number" or not (d > 0 and d <= 86400)) then
      error("bad argument #2 to '" .. fname .. "' (opts.deadline must be seconds, more than 0 and at most 86400)", 3)
    end
    if p ~= nil then passthrough = p end
  end
  local body, list = endpoint.encode(task, passthrough and { passthrough = true } or nil)
  if not body then return nil, errors.validation(list, list.truncated, endpoint.noun) end
  return body
end


--- A new call. opts: deadline (seconds from now; else the client's), deadline_at (an
-- absolute monotonic time, for a batch). budget: a shared retry budget or nil.
function _M.new(client, endpoint, body, opts, budget)
  local t = now()
  local deadline = opts and opts.deadline or client.deadline
  local at = opts and opts.deadline_at or (deadline and t + deadline) or nil
  return {
    client = client, method = endpoint.method, url = client.urls[endpoint.name], body = body,
    connect_timeout = client.connect_timeout, started = t,
    deadline = deadline, deadline_at = at, budget = budget,
    attempt = 0, retries_left = client.max_retries, skew_fixed = false, sent = false,
    waited = client.rate and 0 or nil, slept = 0, endpoint = endpoint, reused = false,
  }
end

--- Books the call's next attempt with the client's rate limit: the seconds to wait before
-- it (0 without a limit). A wait of more than 0 starts now, unless one started already (a job
-- waits from the moment it is ready to send): `paced` ends it.
function _M.pace(c)
  local client = c.client
  if not client.rate then return 0 end
  local d = client.state:reserve(now())
  if d > 0 and not c.pace_t0 then c.pace_t0 = now() end
  return d
end

--- The call's wait for its turn is over (it goes, or it ended): the time it took is added to
-- the call's `waited`.
function _M.paced(c)
  local t0 = c.pace_t0
  if t0 then
    c.waited = c.waited + (now() - t0)
    c.pace_t0 = nil
  end
end

--- The call's end, as it is handed over: res or err, with `waited` when the client has a rate
-- limit (the seconds the call spent waiting for it).
function _M.ended(c, res, err)
  if c.waited then
    _M.paced(c)
    local ended = res or err
    ended.waited = c.waited
  end
  local on_call = c.client.on_call
  if on_call then _M.event(c.client, c.endpoint, res, err, c) end
  return res, err
end

--- Tells the client's on_call of a call that ended (c: the call, nil for a body that never
-- became one: it broke a rule). Never raises.
function _M.event(client, endpoint, res, err, c)
  local on_call = client.on_call
  if not on_call then return end
  local x = res or err
  local ev = {
    endpoint = endpoint and endpoint.name, outcome = res and "ok" or err.kind,
    code = x.code, http_status = x.http_status, attempts = x.attempts or (c and c.attempt) or 0,
    duration = c and (now() - c.started) or 0,
    waited = c and ((c.waited or 0) + c.slept) or 0, reused = c and c.reused or false,
  }
  local ok, why = pcall(on_call, ev)
  if not ok then client:_callback_raised(why, { callback = "on_call" }) end
end

-- The call's deadline passed: before attempt n + 1, or during attempt n (`during`). Worth
-- retrying later (retryable), not by this call.
local function deadline_error(c, during)
  return errors.TransportError.new{ reason = "deadline", attempts = c.attempt, sent = c.sent,
    retryable = true,
    message = format(during and "deadline of %gs passed during attempt %d" or "deadline of %gs passed before attempt %d",
                     c.deadline or (c.deadline_at - c.started), during and c.attempt or c.attempt + 1) }
end
_M.deadline_error = deadline_error

--- The error of every call on a closed client (attempts: those made before the close).
function _M.closed_error(attempts)
  return errors.TransportError.new{ reason = "closed", attempts = attempts or 0,
    message = "the client is closed (client:close() was called)" }
end

--- Starts the next attempt, signed now: the call becomes its request (timeout, headers and
-- lines set: the headers of the second, shared by every request of it, read only; lines are
-- the same as libcurl takes them; the sender clears both once the request is handed over, so
-- the Sign is not left in a job a caller may dump). true, or nil, TransportError: "deadline",
-- or "closed" when the client was closed (from a logger, a callback or a transport: nothing
-- more leaves).
function _M.begin(c)
  local client = c.client
  if client.closed then
    local err = _M.closed_error(c.attempt)
    err.sent = c.sent
    return nil, err
  end
  local timeout = client.timeout
  local t = now()
  if client.breaker then
    local left = client.state:breaker_check(t)
    if left then
      return nil, errors.CircuitOpenError.new{ attempts = c.attempt, sent = c.sent,
        retry_after = left, message = format("the circuit breaker is open: %d failures in a row "
          .. "worth retrying; the next trial in %.1fs", client.breaker.failures, left) }
    end
  end
  if c.deadline_at then
    local left = c.deadline_at - t
    if left <= 0 then return nil, deadline_error(c) end
    c.capped = left < timeout   -- a timeout of this attempt is then the deadline's
    if c.capped then timeout = left end
  end
  c.attempt = c.attempt + 1
  c.t0 = t
  c.timeout = timeout
  local signed = _M.signed(client)
  c.headers, c.lines = signed.headers, signed.lines
  return true
end

--- The signature of the current second on the client's clock: { sec, headers, lines } (the
-- request headers as a table and as libcurl's lines; shared, read only). The Timestamp has
-- whole seconds, so its Sign is made once a second per client.
function _M.signed(client)
  local sec = epoch_second(client)
  local signed = signatures[client]
  if not signed or signed.sec ~= sec then
    local ts = format("%d", sec)
    local sign = core.sign(client.api_key, secrets[client], ts)
    signed = { sec = sec, headers = _M.headers(client, ts, sign),
               lines = { client.ct_line, client.key_line, "Timestamp: " .. ts, "Sign: " .. sign } }
    signatures[client] = signed
  end
  return signed
end

-- A plain success's headers are parsed when first read (most callers never read them): the
-- raw block waits in the result under a key no caller has (made with the result, so that it
-- costs no table of its own).
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

--- A plain success's result (see outcome): the message redacted if it holds the secret;
-- its `headers` made from raw (the answer's header block) when first read.
-- @local
function _M.plain_result(client, msg, attempts, raw)
  msg = msg or "success"
  local secret = secrets[client]
  if secret and find(msg, secret, 1, true) then msg = _M.redact(client, msg) end
  if not raw then return { code = 0, message = msg, http_status = 200, attempts = attempts } end
  if secret and find(raw, secret, 1, true) then raw = _M.redact(client, raw) end
  return setmetatable({ code = 0, message = msg, http_status = 200, attempts = attempts, [RAW] = raw },
                      plain_mt)
end

--- The answer's headers as a plain table, lower-case names (a transport may make them when
-- first read: this makes them all).
function _M.answer_headers(resp)
  local h = resp.headers
  if type(h) ~= "table" then
    h = {}
    resp.headers = h
  end
  local _ = h.date
  return h
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

--- An answer -> result, or nil, typed error (before redaction; the result's attempts is
-- the given count, the error's is set by outcome).
function _M.classify(resp, attempts)
  local status = resp.status
  if status < 200 or status > 299 then
    local headers = _M.answer_headers(resp)
    return nil, errors.HttpError.new{
      http_status = status, retryable = status == 429 or status >= 500,
      retry_after = httpdate.retry_after(headers["retry-after"], headers["date"], wall()),
      message = "the server answered HTTP " .. tostring(status),
    }
  end
  local t = json.decode(resp.body)
  if type(t) ~= "table" then
    return nil, errors.DecodeError.new{ http_status = status,
      message = "the answer is not a JSON object (" .. #resp.body .. " bytes)" }
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

local RETRY_TRANSPORT = { connect = true, timeout = true, reset = true }

--- The decision after one attempt: resp (an answer) or terr (the transport's failure,
-- { reason, code, message, sent }); or resp true and terr the message (or nil), when the
-- transport recognised a plain success itself (curl's fast path: HTTP 200, code 0, a plain
-- message, no data; see core.plain_success). Returns "done", res | "stop", err | "retry", delay.
function _M.outcome(c, resp, terr, raw, reused)
  local client = c.client
  local res, err
  local plain = resp == true
  if plain then
    c.sent, c.reused = true, reused == true
    res = _M.plain_result(client, terr, c.attempt, raw)
  elseif resp then
    c.sent, c.reused = true, resp.reused == true
    res, err = _M.classify(resp, c.attempt)
    local x = res or err
    x.headers = redact_tree(client, _M.answer_headers(resp), 0)
  elseif terr.reason == "timeout" and c.capped then
    if terr.sent then c.sent = true end
    err = deadline_error(c, true)
  else
    if terr.sent then c.sent = true end
    err = errors.TransportError.new{
      reason = terr.reason, code = terr.code, message = terr.message, sent = c.sent,
      retryable = RETRY_TRANSPORT[terr.reason] == true,
    }
  end
  local logger = client.logger
  local fields = logger and {   -- built only for a logger: this is the hot path
    method = c.method, url = c.url, attempt = c.attempt, duration = now() - c.t0,
    status = plain and 200 or resp and resp.status or nil, error_kind = err and err.kind or nil,
  }
  local budget = c.budget
  if res then
    if client.breaker then client.state:breaker_record(false, now()) end
    if not plain then _M.redact_result(client, res, resp.body) end
    if budget then budget:earn() end
    if fields then client:_log("info", "itnio: task updated", fields) end
    return "done", res
  end
  err.attempts = c.attempt
  err.message = _M.redact(client, err.message)
  if client.breaker then   -- (the caller's own ends, a deadline, a close, say nothing of the server)
    local r = err.reason
    if r ~= "deadline" and r ~= "closed" and r ~= "cancelled" then
      client.state:breaker_record(err.retryable == true, now())
    end
  end

  local again, delay = false, 0
  if err.kind == "TimestampExpiredError" and not c.skew_fixed then
    -- Learn the server's clock from its Date header and resend at once, re-signed.
    local server = httpdate.parse(_M.answer_headers(resp)["date"])
    if server then
      client.offset = server - floor(wall())   -- (a copy to read; the state is the truth)
      client.state:set_offset(client.offset)
      c.skew_fixed, again = true, true
      if fields then fields.offset = client.offset end
    end
  elseif err.retryable and c.retries_left > 0 and err.reason ~= "deadline" then
    local ceiling = min(client.backoff_cap, client.backoff_base * 2 ^ (client.max_retries - c.retries_left))
    delay = random() * ceiling   -- full jitter
    if err.retry_after then
      if err.retry_after > client.max_retry_after then
        err.message = err.message .. format(" (Retry-After %ss is longer than max_retry_after)",
                                            seconds_text(err.retry_after))
      else
        delay, again = max(delay, err.retry_after), true
      end
    else
      again = true
    end
    if again and c.deadline_at and now() + delay >= c.deadline_at then
      again = false
      err.message = err.message .. format(" (no retry: the deadline of %gs would pass)",
                                          c.deadline or (c.deadline_at - c.started))
    end
    if again and budget then
      if not budget:take() then
        again = false
        err.message = err.message .. " (no retry: the batch's retry budget is spent)"
      end
    end
    if again then c.retries_left = c.retries_left - 1 end
  end
  if fields then
    fields.retry_in = again and delay or nil
    client:_log(again and "warn" or "error", "itnio: attempt failed: " .. tostring(err), fields)
  end
  if again then return "retry", delay end
  return "stop", err
end

--- Runs a call to its end on a transport (its blocking send), waiting with sleep(seconds)
-- between attempts: res, or nil, err. The blocking call and the nginx path (and its batch)
-- use it.
function _M.run(c, transport, sleep)
  while true do
    local wait = _M.pace(c)
    if wait > 0 then   -- (a deadline that comes first ends the wait: begin then says so)
      if c.deadline_at then wait = min(wait, max(0, c.deadline_at - now())) end
      sleep(wait)
      _M.paced(c)
    end
    local ok, err = _M.begin(c)
    if not ok then return _M.ended(c, nil, err) end
    local resp, terr, raw, reused = transport:send(c)
    c.headers, c.lines = nil, nil   -- the Sign stays out of what a caller may dump
    local what, x = _M.outcome(c, resp, terr, raw, reused)
    if what == "done" then return _M.ended(c, x) end
    if what == "stop" then return _M.ended(c, nil, x) end
    sleep(x)
    c.slept = c.slept + x
  end
end

return _M
