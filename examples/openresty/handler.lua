-- The handler of examples/openresty/nginx.conf: takes a task as JSON, updates it through
-- lua-itnio, answers with the result. Inside nginx the client sends on cosockets by itself
-- (no option needed), so a slow vendor never blocks the worker.
local itnio = require "itnio"
local cjson = require "cjson.safe"

local _M = {}

-- What /metrics serves, kept in lua_shared_dict itnio_metrics so that every worker adds to it:
-- calls by endpoint and outcome, and the calls' durations in buckets (seconds).
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local function count(ev)
  local m = ngx.shared.itnio_metrics
  local labels = ev.endpoint .. "|" .. ev.outcome
  m:incr("calls|" .. labels, 1, 0)
  local d = ev.endpoint
  for _, le in ipairs(BUCKETS) do
    if ev.duration <= le then m:incr("bucket|" .. d .. "|" .. le, 1, 0) end
  end
  m:incr("bucket|" .. d .. "|+Inf", 1, 0)
  m:incr("sum|" .. d, ev.duration, 0)
  m:incr("count|" .. d, 1, 0)
end

-- One client per worker: it keeps the connection pool's name and the options; what it
-- learns (the clock offset, the breaker's state, the retry budget) lives in the shared dict,
-- so the workers learn it once; with ITNIO_STORE (redis://[user:password@]host[:port][/db]),
-- in Redis, for every machine of the account, the dict being the machine's fallback.
local client, client_err

local function get_client()
  if client then return client end
  client, client_err = itnio.new{
    api_key    = os.getenv("ITNIO_API_KEY"),
    api_secret = os.getenv("ITNIO_API_SECRET"),
    base_url   = os.getenv("ITNIO_BASE_URL"),     -- nil: https://api.itniotech.com
    timeout = 10, connect_timeout = 3, max_retries = 2, deadline = 25,
    shared_dict = "itnio", breaker = { failures = 20, cooldown = 10 },
    store = os.getenv("ITNIO_STORE"),                -- nil: the dict alone (this machine)
    on_call = count,
    logger = function(level, message, fields)
      if level ~= "info" then
        local attempt = fields and fields.attempt
        ngx.log(level == "error" and ngx.ERR or ngx.WARN, message, attempt and " attempt=" .. attempt or "")
      end
    end,
  }
  return client, client_err
end

local STATUS = {   -- the HTTP status this endpoint answers for each failure
  ValidationError = 422, ParameterError = 422, ConfigError = 500,
  AuthError = 502, IpLimitError = 502, TimestampExpiredError = 502, SystemError = 502,
  ApiError = 502, HttpError = 502, DecodeError = 502, TransportError = 504, CircuitOpenError = 503,
}

-- A JSON object, its keys in the order given (those that are nil left out), so that every
-- answer reads the same: a value that is a table { json = text } is JSON already.
local function object(keys, t)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v ~= nil then
      out[#out + 1] = cjson.encode(k) .. ":" .. (type(v) == "table" and v.json or cjson.encode(v))
    end
  end
  return { json = "{" .. table.concat(out, ",") .. "}" }
end

local OK_KEYS = { "ok", "code", "message", "attempts" }
local ERROR_KEYS = { "kind", "code", "message", "retryable", "attempts", "reason", "errors" }
local RULE_KEYS = { "rule", "field", "message" }

-- Answers {"ok":false,"error":{...}} (the error's keys in ERROR_KEYS' order), or the result.
local function reply(status, ok, fields)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  if ok then
    fields.ok = true
    ngx.say(object(OK_KEYS, fields).json)
  else
    if fields.errors then
      local rules = {}
      for i, e in ipairs(fields.errors) do rules[i] = object(RULE_KEYS, e).json end
      fields.errors = { json = "[" .. table.concat(rules, ",") .. "]" }
    end
    ngx.say('{"ok":false,"error":', object(ERROR_KEYS, fields).json, "}")
  end
  return ngx.exit(status)
end

-- The request's body: in memory up to client_body_buffer_size, else the file nginx spooled
-- it to (a task with a large baseFile).
local function request_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file()
  if not path then return nil end
  local f = io.open(path, "rb")   -- a local file nginx just wrote: fast, no network
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

function _M.update()
  local body = request_body()
  if not body then
    return reply(400, false, { message = "send the task as a JSON body (at most 16 MB)" })
  end
  local task = cjson.decode(body)
  if type(task) ~= "table" then
    return reply(400, false, { message = "the body is not a JSON object" })
  end
  local c, err = get_client()
  if not c then return reply(500, false, { kind = err.kind, message = err.message }) end
  local res
  res, err = c:recall_update(task)
  if res then
    return reply(200, true, { code = res.code, message = res.message, attempts = res.attempts })
  end
  return reply(STATUS[err.kind] or 502, false, {
    kind = err.kind, code = err.code, message = err.message, retryable = err.retryable,
    attempts = err.attempts, errors = err.errors, reason = err.reason,
  })
end

-- GET /metrics: the counters in Prometheus' text format (version 0.0.4).
function _M.metrics()
  local m = ngx.shared.itnio_metrics
  local calls, hist = {}, {}
  for _, key in ipairs(m:get_keys(0)) do
    local kind, a, b = key:match("^(%a+)|([^|]+)|?(.*)$")
    local v = m:get(key)
    if kind == "calls" then
      calls[#calls + 1] = ('itnio_calls_total{endpoint="%s",outcome="%s"} %d'):format(a, b, v)
    elseif kind == "bucket" then
      hist[#hist + 1] = { a, tonumber(b) or math.huge,
                          ('itnio_call_duration_seconds_bucket{endpoint="%s",le="%s"} %d'):format(a, b, v) }
    elseif kind == "sum" then
      hist[#hist + 1] = { a, math.huge,
                          ('itnio_call_duration_seconds_sum{endpoint="%s"} %.6f'):format(a, v), 1 }
    elseif kind == "count" then
      hist[#hist + 1] = { a, math.huge,
                          ('itnio_call_duration_seconds_count{endpoint="%s"} %d'):format(a, v), 2 }
    end
  end
  table.sort(calls)
  table.sort(hist, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    if x[2] ~= y[2] then return x[2] < y[2] end
    return (x[4] or 0) < (y[4] or 0)
  end)
  local out = { "# HELP itnio_calls_total Calls to the ITNIO API by endpoint and outcome (ok or the "
                  .. "error's class).",
                "# TYPE itnio_calls_total counter" }
  for _, line in ipairs(calls) do out[#out + 1] = line end
  out[#out + 1] = "# HELP itnio_call_duration_seconds How long each call took, its retries included."
  out[#out + 1] = "# TYPE itnio_call_duration_seconds histogram"
  for _, h in ipairs(hist) do out[#out + 1] = h[3] end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.say(table.concat(out, "\n"))
end

return _M
