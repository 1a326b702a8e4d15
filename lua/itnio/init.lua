--- lua-itnio: the ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua.
--
--   local itnio = require "itnio"
--   local client = assert(itnio.new{ api_key = ..., api_secret = ... })
--   local res, err = client:update_recall_task(task)   -- res.code == 0, or err (itnio.errors)
--
-- Failures come back as nil, err; programming errors (a wrong argument type) raise.
local core   = require "itnio.core"
local errors = require "itnio.errors"
local compat = require "itnio.compat"
local json   = require("cjson.safe").new()

local type, tostring, tonumber, ipairs, pcall, error = type, tostring, tonumber, ipairs, pcall, error
local setmetatable = setmetatable
local floor, min, max, random = math.floor, math.min, math.max, math.random
local sub, find, format = string.sub, string.find, string.format

local _M = { _VERSION = core._VERSION, errors = errors }

local DEFAULT_BASE_URL = "https://api.itniotech.com"
local UPDATE_PATH      = "/voice/recallFlow/update"
local CONTENT_TYPE     = "application/json;charset=UTF-8"

local Client = {}
local client_mt = { __index = Client }

-- Secrets live here, keyed by client, not in the client table: dumping a client (an
-- inspect(), a debug print, an error that carries it) cannot show them.
local secrets = setmetatable({}, { __mode = "k" })

local function config_error(msg)
  return nil, errors.ConfigError.new{ message = msg }
end

local function is_loopback(host)
  return host == "localhost" or host == "[::1]" or find(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

-- "https://host[:port][/prefix]" -> scheme, host, base without a trailing slash; or nil, why.
local function parse_base_url(url)
  if type(url) ~= "string" then return nil, "base_url must be a string" end
  if find(url, "[%s%c]") then return nil, "base_url must not contain white space or control characters" end
  local scheme, host, rest = url:match("^(%a[%w+.-]*)://(%[[%x:.]+%])(.*)$")   -- [IPv6]
  if not scheme then scheme, host, rest = url:match("^(%a[%w+.-]*)://([%w.%-]+)(.*)$") end
  if not scheme then return nil, "base_url must look like https://host[:port][/path]" end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then return nil, "base_url must be http or https" end
  local port = rest:match("^:(%d+)")
  if port then
    rest = sub(rest, #port + 2)
    if tonumber(port) < 1 or tonumber(port) > 65535 then return nil, "base_url has a bad port" end
  end
  if rest ~= "" and sub(rest, 1, 1) ~= "/" then return nil, "base_url has a bad port or path" end
  if find(rest, "[?#]") then return nil, "base_url must not have a query or fragment" end
  rest = rest:gsub("/+$", "")
  local base = scheme .. "://" .. host .. (port and (":" .. port) or "") .. rest
  return scheme, host:lower(), base
end

local function check_text(opts, name, required)
  local v = opts[name]
  if v == nil then
    if required then return false, name .. " is required" end
    return true
  end
  if type(v) ~= "string" then return false, name .. " must be a string, got " .. type(v) end
  if required and v == "" then return false, name .. " must not be empty" end
  if find(v, "%c") then return false, name .. " must not contain control characters (CR, LF...)" end
  return true
end

local function check_number(opts, name, lo, hi, dflt)
  local v = opts[name]
  if v == nil then return true, dflt end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    return false, format("%s must be a number from %s to %s", name, tostring(lo), tostring(hi))
  end
  return true, v
end

--- itnio.new(opts) -> client, or nil, ConfigError.
-- opts: api_key, api_secret (required); base_url; timeout (10 s), connect_timeout (3 s);
-- max_retries (2), backoff_base (0.5 s), backoff_cap (8 s), max_retry_after (60 s),
-- deadline (s, none); cafile, capath, proxy, user_agent, max_body (1 MiB); insecure
-- (exactly true: TLS not verified, loudly); allow_http (plain http to a non-loopback host);
-- logger(level, message, fields); transport ("curl", "ngx" or a function); passthrough.
function _M.new(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local ok, why
  for _, name in ipairs({ "api_key", "api_secret" }) do
    ok, why = check_text(opts, name, true)
    if not ok then return config_error(why) end
  end
  for _, name in ipairs({ "cafile", "capath", "proxy", "user_agent" }) do
    ok, why = check_text(opts, name, false)
    if not ok then return config_error(why) end
  end
  local scheme, host, base = parse_base_url(opts.base_url or DEFAULT_BASE_URL)
  if not scheme then return config_error(host) end
  for _, name in ipairs({ "insecure", "allow_http", "passthrough" }) do
    if opts[name] ~= nil and type(opts[name]) ~= "boolean" then
      return config_error(name .. " must be a boolean")
    end
  end
  if scheme == "http" and not is_loopback(host) and opts.allow_http ~= true then
    return config_error("base_url is plain http to " .. host .. ": the key and the task would "
      .. "travel unencrypted; use https, or pass allow_http = true")
  end
  if opts.logger ~= nil and type(opts.logger) ~= "function" then
    return config_error("logger must be a function(level, message, fields)")
  end
  local self = {
    base_url = base, url = base .. UPDATE_PATH, api_key = opts.api_key,
    passthrough = opts.passthrough == true, logger = opts.logger, offset = 0,
  }
  local nums = {
    { "timeout", 0.001, 86400, 10 }, { "connect_timeout", 0.001, 86400, 3 },
    { "max_retries", 0, 100, 2 }, { "backoff_base", 0, 3600, 0.5 }, { "backoff_cap", 0, 3600, 8 },
    { "max_retry_after", 0, 86400, 60 }, { "deadline", 0.001, 86400, nil },
    { "max_body", 1, 1024 * 1024 * 1024, 1024 * 1024 },
  }
  for i = 1, #nums do
    local n = nums[i]
    local good, v = check_number(opts, n[1], n[2], n[3], n[4])
    if not good then return config_error(v) end
    self[n[1]] = v
  end
  if self.max_retries ~= floor(self.max_retries) then return config_error("max_retries must be a whole number") end

  local t = opts.transport
  if type(t) == "function" then
    self.transport_name, self.transport = "custom", t
  elseif t == nil or t == "curl" or t == "ngx" then
    self.transport_name = t
  else
    return config_error('transport must be "curl", "ngx" or a function(request)')
  end
  self.transport_opts = {
    cafile = opts.cafile, capath = opts.capath, proxy = opts.proxy, max_body = self.max_body,
    user_agent = opts.user_agent, insecure = opts.insecure == true,
    connect_timeout = self.connect_timeout,
  }
  setmetatable(self, client_mt)
  secrets[self] = opts.api_secret
  if opts.insecure == true then
    self:_log("warn", "itnio: TLS verification is OFF (insecure = true): anyone on the path "
      .. "can read and change requests; never use this in production", { url = self.url }, true)
  end
  return self
end

function client_mt.__tostring(self)
  return format("itnio.Client(%s, key %s...)", self.base_url, sub(self.api_key, 1, 3))
end

-- Hands a line to the caller's logger; with no logger, only `loud` lines reach stderr.
function Client:_log(level, message, fields, loud)
  local logger = self.logger
  if logger then
    pcall(logger, level, message, fields)   -- a broken logger must not break the call
  elseif loud then
    io.stderr:write(message, "\n")
  end
end

local function phase_error(phase)
  return errors.TransportError.new{ reason = "phase", message = format(
    "cannot send from nginx's %s phase: no cosockets there; move the call into a "
    .. "rewrite/access/content handler or an ngx.timer.at callback", phase) }
end

-- The transport for this call: chosen once (inside nginx, the cosocket one); the phase is
-- checked on every call, as one client may serve several phases.
function Client:_transport()
  local cosockets, phase = compat.ngx_phase()
  local name = self.transport_name
  if phase ~= nil and not cosockets and (name == nil or name == "ngx") then
    return nil, phase_error(phase)
  end
  if self.transport then return self.transport end
  if name == nil then name = phase ~= nil and "ngx" or "curl" end
  local mod = require("itnio.transport." .. name)
  local topts = self.transport_opts
  if not topts.user_agent then topts.user_agent = mod.default_user_agent end
  self.transport, self.transport_handle = mod.new(topts)
  self.transport_name = name
  return self.transport
end

local function redact(self, s)
  local secret = secrets[self]
  if type(s) ~= "string" or not secret then return s end
  local i = find(s, secret, 1, true)
  while i do
    s = sub(s, 1, i - 1) .. "<redacted>" .. sub(s, i + #secret)
    i = find(s, secret, i + 10, true)
  end
  return s
end

local function headers_for(self, ts, sign)
  return {
    ["Content-Type"] = CONTENT_TYPE, ["Api-Key"] = self.api_key,
    Timestamp = ts, Sign = sign,
  }
end

local function encode(self, task, opts, fname)
  if type(task) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. type(task) .. ")", 3)
  end
  local passthrough = self.passthrough
  if opts and opts.passthrough ~= nil then passthrough = opts.passthrough == true end
  local body, list = core.encode_recall_update(task, passthrough and { passthrough = true } or nil)
  if not body then return nil, errors.validation(list, list.truncated) end
  return body
end

--- client:prepare_recall_update(task [, opts]) -> the request { method, url, headers, body }
-- with the Sign header shown as "<redacted>", or nil, ValidationError. Sends nothing.
function Client:prepare_recall_update(task, opts)
  local body, err = encode(self, task, opts, "prepare_recall_update")
  if not body then return nil, err end
  local ts = format("%d", floor(compat.wall() + self.offset))
  return { method = "POST", url = self.url, headers = headers_for(self, ts, "<redacted>"), body = body }
end

-- Retry-After: delta-seconds or an HTTP date (against the answer's Date, else our clock).
local function retry_after(value, date)
  if type(value) ~= "string" then return nil end
  local n = tonumber(value:match("^%s*(%d+)%s*$"))
  if n then return n end
  local at = compat.parse_http_date(value)
  if not at then return nil end
  local now = compat.parse_http_date(date) or compat.wall()
  return max(0, at - now)
end

-- The answer's code as an integer (cjson gives floats on 5.3+: -1.0 must print as -1).
local function integer_code(v)
  if type(v) == "string" and find(v, "^%s*%-?%d+%s*$") then v = tonumber(v) end
  if type(v) ~= "number" or v ~= floor(v) or v ~= v then return nil end
  return compat.tointeger(v)
end

-- An answer -> result, or nil, typed error (before attempts and redaction are added).
local function classify(resp)
  local status, headers = resp.status, resp.headers or {}
  if status < 200 or status > 299 then
    return nil, errors.HttpError.new{
      http_status = status, retryable = status == 429 or status >= 500,
      retry_after = retry_after(headers["retry-after"], headers["date"]),
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
    return { code = 0, message = msg or "success", data = data, http_status = status }
  end
  return nil, errors.from_code(code, msg, { http_status = status })
end

local RETRY_TRANSPORT = { connect = true, timeout = true, reset = true }

-- Sends body with retries; every attempt is signed anew.
function Client:_send(body, opts)
  local transport, terr = self:_transport()
  if not transport then terr.attempts = 0; return nil, terr end
  local secret = secrets[self]
  local deadline = (opts and opts.deadline) or self.deadline
  local started = compat.now()
  local retries_left = self.max_retries
  local skew_fixed = false
  local attempt = 0
  local req = { method = "POST", url = self.url, body = body, connect_timeout = self.connect_timeout }
  while true do
    attempt = attempt + 1
    local timeout = self.timeout
    if deadline then
      local left = deadline - (compat.now() - started)
      if left <= 0 then
        return nil, errors.TransportError.new{ reason = "deadline", attempts = attempt - 1,
          message = format("deadline of %gs passed before attempt %d", deadline, attempt) }
      end
      timeout = min(timeout, left)
    end
    local ts = format("%d", floor(compat.wall() + self.offset))
    req.headers = headers_for(self, ts, core.sign(self.api_key, secret, ts))
    req.timeout = timeout
    local t0 = compat.now()
    local resp, res, err
    local called, r1, r2 = pcall(transport, req)   -- a transport that raises is a failure, not a crash
    if called then
      resp, err = r1, r2
    else
      resp, err = nil, { kind = "other", message = "the transport raised: " .. tostring(r1), sent = true }
    end
    if resp ~= nil and (type(resp) ~= "table" or type(resp.status) ~= "number" or type(resp.body) ~= "string") then
      resp, err = nil, { kind = "protocol", message = "the transport returned no {status, body}", sent = true }
    elseif resp == nil and type(err) ~= "table" then
      err = { kind = "other", message = "the transport failed: " .. tostring(err), sent = true }
    end
    if resp then
      res, err = classify(resp)
    else
      err = errors.TransportError.new{
        reason = err.kind, code = err.code, message = err.message, sent = err.sent == true,
        retryable = RETRY_TRANSPORT[err.kind] == true,
      }
    end
    local fields = self.logger and {   -- built only for a logger: this is the hot path
      method = "POST", url = self.url, attempt = attempt, duration = compat.now() - t0,
      status = resp and resp.status or nil, error_kind = err and err.kind or nil,
    }
    if res then
      res.attempts = attempt
      if fields then self:_log("info", "itnio: task updated", fields) end
      return res
    end
    err.attempts = attempt
    err.message = redact(self, err.message)

    local again, delay = false, 0
    if err.kind == "TimestampExpiredError" and not skew_fixed then
      -- Learn the server's clock from its Date header and resend at once, re-signed.
      local server = compat.parse_http_date(resp.headers and resp.headers["date"])
      if server then
        self.offset = server - floor(compat.wall())
        skew_fixed, again = true, true
        if fields then fields.offset = self.offset end
      end
    elseif err.retryable and retries_left > 0 then
      local ceiling = min(self.backoff_cap, self.backoff_base * 2 ^ (self.max_retries - retries_left))
      delay = random() * ceiling   -- full jitter
      if err.retry_after then
        if err.retry_after > self.max_retry_after then
          err.message = err.message .. format(" (Retry-After %ds is longer than max_retry_after)", err.retry_after)
        else
          delay, again = max(delay, err.retry_after), true
        end
      else
        again = true
      end
      if again and deadline and (compat.now() - started) + delay >= deadline then
        again = false
        err.message = err.message .. format(" (no retry: the deadline of %gs would pass)", deadline)
      end
      if again then retries_left = retries_left - 1 end
    end
    if fields then
      fields.retry_in = again and delay or nil
      self:_log(again and "warn" or "error", "itnio: attempt failed: " .. tostring(err), fields)
    end
    if not again then return nil, err end
    compat.sleep(delay)
  end
end

--- client:update_recall_task(task [, opts]) -> res, or nil, err.
-- res = { code = 0, message, data, http_status, attempts }. opts: passthrough, deadline.
function Client:update_recall_task(task, opts)
  local body, err = encode(self, task, opts, "update_recall_task")
  if not body then return nil, err end
  return self:_send(body, opts)
end

--- client:close(): releases the connection (the client may not be used after it).
function Client:close()
  local t = self.transport_handle
  if t and t.close then t:close() end
end

_M._classify = classify   -- for fuzz/fuzz_response.c only

return _M
