--- lua-itnio: the ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua.
--
--     local itnio = require "itnio"
--     local client = assert(itnio.new{ api_key = ..., api_secret = ... })
--     local res, err = client:update_recall_task(task)
--     -- res.code == 0; or res is nil, and err is an error of itnio.errors
--
-- Failures come back as `nil, err`; programming errors (a wrong argument type) raise.
-- @module itnio
local core   = require "itnio.core"
local errors = require "itnio.errors"
local compat = require "itnio.compat"
local call   = require "itnio.call"
local jobs   = require "itnio.jobs"
local args   = require "itnio.args"
-- Loaded now, not on first use: with no file descriptor left, a require fails as "not found".
local curl   = require "itnio.transport.curl"

local type, tostring, tonumber, ipairs, pcall, error = type, tostring, tonumber, ipairs, pcall, error
local setmetatable = setmetatable
local floor = math.floor
local sub, find, format = string.sub, string.find, string.format

local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = { _VERSION = core._VERSION, errors = errors }

local DEFAULT_BASE_URL = "https://api.itniotech.com"
local RECALL_UPDATE    = call.endpoints.recall_update

local Client = {}
local client_mt = { __index = Client }

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

-- The options itnio.new knows; any other name is a ConfigError (a typo would pass silently).
local NEW_OPTS = args.set{
  "api_key", "api_secret", "base_url", "timeout", "connect_timeout", "max_retries", "backoff_base",
  "backoff_cap", "max_retry_after", "deadline", "cafile", "capath", "proxy", "user_agent",
  "max_body", "insecure", "allow_http", "logger", "transport", "passthrough",
}
local CALL_OPTS = args.set{ "passthrough", "deadline" }

--- A new client; it sends nothing. Any option name not listed here is a ConfigError (a typo
-- would pass silently):
--
-- - `api_key`, `api_secret`: the account's key and secret (required);
-- - `base_url`: `https://api.itniotech.com` unless given (a path prefix is kept);
-- - `timeout` (10 s): bounds each attempt whole; `connect_timeout` (3 s): its connect;
-- - `max_retries` (2), `backoff_base` (0.5 s), `backoff_cap` (8 s): retries, with exponential
--   backoff and full jitter; `max_retry_after` (60 s): the longest `Retry-After` honoured;
-- - `deadline`: seconds for a whole call, retries and their waits included (none unless given);
-- - `cafile`, `capath`: the trust roots; `proxy`: a URL, or `true` for the environment's
--   (`http_proxy` and friends); no proxy when unset, whatever the environment says;
-- - `user_agent`; `max_body` (1 MiB): the largest answer, in bytes;
-- - `insecure`: exactly `true` turns TLS verification off, and says so loudly;
-- - `allow_http`: `true` allows plain http to a host that is not the loopback;
-- - `logger`: a `function(level, message, fields)` that sees each attempt;
-- - `transport`: `"curl"`, `"ngx"` or a `function(request)` of yours (unset: `"ngx"` inside
--   nginx, else `"curl"`);
-- - `passthrough`: `true` sends the fields the rules do not know (strings, numbers, booleans)
--   instead of refusing them.
-- @tparam table opts the options above
-- @treturn Client the client
-- @return[2] nil
-- @treturn[2] ConfigError what is wrong with the options
-- @raise when opts is not a table
function _M.new(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local why = args.unknown_option(opts, NEW_OPTS)
  if why then return config_error(why) end
  local ok
  for _, name in ipairs({ "api_key", "api_secret" }) do
    ok, why = check_text(opts, name, true)
    if not ok then return config_error(why) end
  end
  for _, name in ipairs({ "cafile", "capath", "user_agent" }) do
    ok, why = check_text(opts, name, false)
    if not ok then return config_error(why) end
  end
  if opts.proxy ~= true then
    ok, why = check_text(opts, "proxy", false)
    if not ok then return config_error(why .. " (a proxy URL, or true for the environment's)") end
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
    base_url = base, url = base .. RECALL_UPDATE.path, api_key = opts.api_key,
    passthrough = opts.passthrough == true, logger = opts.logger, offset = 0,
    urls = { [RECALL_UPDATE] = base .. RECALL_UPDATE.path },
    ct_line = "Content-Type: " .. call.CONTENT_TYPE,
    key_line = "Api-Key: " .. opts.api_key,
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
  elseif t == "ngx" and not (ngx and ngx.socket and ngx.socket.tcp) then
    return config_error('transport "ngx" needs OpenResty (nginx with its Lua module): outside '
      .. 'nginx, leave transport unset or use "curl"')
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
  call.keep_secret(self, opts.api_secret)
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
  local mod = curl
  if name == "ngx" then
    local loaded, m = pcall(require, "itnio.transport.ngx")
    if not loaded then
      return nil, errors.TransportError.new{ reason = "other",
        message = "could not load the nginx transport: " .. tostring(m) }
    end
    mod = m
  end
  local topts = self.transport_opts
  if not topts.user_agent then topts.user_agent = mod.default_user_agent end
  self.transport, self.transport_handle = mod.new(topts)
  self.transport_name = name
  return self.transport
end

--- The request that `update_recall_task` would send first, for a dry run: it sends nothing,
-- and the Sign header is shown as `"<redacted>"`.
-- @tparam table task the task (the Edit Task body; `itnio.recall` builds one)
-- @tparam[opt] table opts `passthrough` (as for `itnio.new`)
-- @treturn table the request, `{ method, url, headers, body }`
-- @return[2] nil
-- @treturn[2] ValidationError every rule the task breaks
-- @raise when task is not a table, or opts is not a table or has an unknown name or a bad value
function Client:prepare_recall_update(task, opts)
  if opts ~= nil then args.options(opts, CALL_OPTS, 2, "prepare_recall_update") end
  local body, err = call.encode(self, RECALL_UPDATE, task, opts, "prepare_recall_update")
  if not body then return nil, err end
  return { method = "POST", url = self.url, body = body,
           headers = call.headers(self, call.timestamp(self), "<redacted>") }
end

-- Sends body with retries, every attempt signed anew, waiting with compat.sleep (ngx.sleep
-- inside nginx, where it does not block the worker).
function Client:_send(endpoint, body, opts, budget)
  if self.closed then return nil, call.closed_error() end
  local transport, terr = self:_transport()
  if not transport then terr.attempts = 0; return nil, terr end
  local c = call.new(self, endpoint, body, opts, budget)
  c.lines = self.transport_name == "curl"
  return call.run(c, transport, compat.sleep)
end

--- Sends a task (Edit Task, Auto-Recall) and waits for the answer, retrying as the client's
-- options say. Inside nginx it waits on cosockets, not blocking the worker.
-- @tparam table task the task (the Edit Task body; `itnio.recall` builds one)
-- @tparam[opt] table opts `passthrough` (as for `itnio.new`), `deadline` (seconds for this
-- call, instead of the client's)
-- @treturn table the answer, `{ code = 0, message, data, http_status, attempts }`
-- @return[2] nil
-- @treturn[2] table the error, of a class of `itnio.errors`
-- @raise when task is not a table, or opts is not a table or has an unknown name or a bad value
function Client:update_recall_task(task, opts)
  if opts ~= nil then args.options(opts, CALL_OPTS, 2, "update_recall_task") end
  local body, err = call.encode(self, RECALL_UPDATE, task, opts, "update_recall_task")
  if not body then return nil, err end
  return self:_send(RECALL_UPDATE, body, opts)
end

--- Ends the jobs in flight (no callback runs) and releases the connections. Later calls on the
-- client return a TransportError whose `reason` is `"closed"`.
function Client:close()
  self.closed = true
  jobs.close(self)
  local t = self.transport_handle
  if t and t.close then t:close() end
end

jobs.install(Client, RECALL_UPDATE)


return _M
