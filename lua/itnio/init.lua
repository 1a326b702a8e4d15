--- lua-itnio: the ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua.
--
--     local itnio = require "itnio"
--     local client = assert(itnio.new{ api_key = ..., api_secret = ... })
--     local res, err = client:recall_update(task)
--     -- res.code == 0; or res is nil, and err is an error of itnio.errors
--
-- Every endpoint the core knows gets four methods, made from its name E (`recall_update`):
-- `client:E` (the call), `client:start_E` (a job, see `itnio.jobs`), `client:prepare_E`
-- (the request, for a dry run) and `client:batch_E` (many at once). Failures come back as
-- `nil, err`; programming errors (a wrong argument type) raise.
-- @module itnio
local core      = require "itnio.core"
local errors    = require "itnio.errors"
local compat    = require "itnio.compat"
local call      = require "itnio.call"
local jobs      = require "itnio.jobs"
local batch     = require "itnio.batch"
local args      = require "itnio.args"
local endpoints = require "itnio.endpoints"
local limiter   = require "itnio.limiter"
local state     = require "itnio.state"
-- Loaded now, not on first use: with no file descriptor left, a require fails as "not found".
local curl      = require "itnio.transport.curl"
local func      = require "itnio.transport.func"

local type, tostring, tonumber, ipairs, pairs, pcall, error = type, tostring, tonumber, ipairs, pairs, pcall, error
local setmetatable = setmetatable
local floor = math.floor
local sub, find, format = string.sub, string.find, string.format

local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = { _VERSION = core._VERSION, errors = errors }

-- itnio.testing (the vendor double) is loaded when first read: production code never pays for it.
setmetatable(_M, { __index = function(t, k)
  if k == "testing" then
    local m = require "itnio.testing"
    rawset(t, k, m)
    return m
  end
end })

local DEFAULT_BASE_URL = "https://api.itniotech.com"

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
  "max_body", "insecure", "allow_http", "logger", "transport", "passthrough", "rate", "burst",
  "breaker", "on_call", "shared_dict",
}
local CALL_OPTS  = args.set{ "passthrough", "deadline" }
local START_OPTS = args.set{ "passthrough", "deadline", "on_done" }

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
--   instead of refusing them;
-- - `rate`, `burst`: at most `rate` attempts a second (a number greater than 0), retries
--   included, `burst` (a whole number, 1 unless given) of them at once after a quiet spell;
--   a token bucket of the client's (`itnio.limiter`). Every path waits its turn: the blocking
--   call sleeps (`ngx.sleep` inside nginx), jobs and the batch wait on a timer `poll` checks.
--   The seconds a call waited for it are its result's and its error's `waited`;
-- - `breaker = { failures = n, cooldown = seconds }`: after n failures in a row worth
--   retrying (no answer, HTTP 429 or 5xx, -18; counted across calls), calls fail at once with
--   a `CircuitOpenError` for `cooldown` seconds; then one trial call goes, and its outcome
--   closes the breaker or opens it again (off unless given);
-- - `on_call = function(ev)`: called once per call when it ends, on every path, with
--   `{ endpoint, outcome ("ok" or the error's class), code, http_status, attempts, duration,
--   waited, reused }`; one that raises does not break the call;
-- - `shared_dict`: inside nginx, the name of a `lua_shared_dict` where the clock offset, the
--   rate limit, the breaker and the batch's retry budget live, shared by every worker
--   (itnio.state); outside nginx a ConfigError.
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
    base_url = base, api_key = opts.api_key,
    passthrough = opts.passthrough == true, logger = opts.logger, offset = 0,
    urls = {}, transports = {},
    ct_line = "Content-Type: " .. call.CONTENT_TYPE,
    key_line = "Api-Key: " .. opts.api_key,
  }
  for _, e in ipairs(endpoints.list) do self.urls[e.name] = base .. e.path end
  self.url = self.urls.recall_update   -- the first endpoint's, as logs and tostring show it
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
  if opts.rate ~= nil or opts.burst ~= nil then
    if opts.rate == nil then return config_error("burst needs a rate") end
    why = limiter.check(opts.rate, opts.burst)
    if why then return config_error(why) end
    self.rate = opts.rate
  end
  if opts.breaker ~= nil then
    why = state.check_breaker(opts.breaker)
    if why then return config_error(why) end
    self.breaker = { failures = opts.breaker.failures, cooldown = opts.breaker.cooldown }
  end
  if opts.on_call ~= nil and type(opts.on_call) ~= "function" then
    return config_error("on_call must be a function(event)")
  end
  self.on_call = opts.on_call
  if opts.shared_dict ~= nil then
    if type(opts.shared_dict) ~= "string" or opts.shared_dict == "" then
      return config_error("shared_dict must be the name of a lua_shared_dict")
    end
    if not (ngx and ngx.shared) then
      return config_error("shared_dict works inside nginx only (a lua_shared_dict is shared by "
        .. "nginx's workers); outside nginx, leave it unset")
    end
  end
  self.state, why = state.new(self, { rate = opts.rate, burst = opts.burst, breaker = self.breaker,
                                      shared_dict = opts.shared_dict })
  if not self.state then return config_error(why) end

  local t = opts.transport
  if type(t) == "function" then
    self.transport_name, self.transports.custom = "custom", func.new(t)
  elseif t == "ngx" and not (ngx and ngx.socket and ngx.socket.tcp) then
    return config_error('transport "ngx" needs OpenResty (nginx with its Lua module): outside '
      .. 'nginx, leave transport unset or use "curl"')
  elseif t == nil or t == "curl" or t == "ngx" then
    self.transport_choice = t
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

--- A callback of the caller's raised: the client's logger hears it each time; with no logger,
-- stderr hears it once per client. Never raises. (The jobs' and the batch's one policy.)
-- @local
function Client:_callback_raised(why, fields)
  local which = fields and fields.callback or "on_done"
  local msg = "itnio: an " .. which .. " callback raised: " .. call.redact(self, errors.text(why))
  if self.logger then
    self:_log("error", msg, fields)
  elseif not self._callback_warned then
    self._callback_warned = true
    pcall(io.stderr.write, io.stderr, msg, " (said once per client)\n")
  end
end

local function phase_error(phase)
  return errors.TransportError.new{ reason = "phase", message = format(
    "cannot send from nginx's %s phase: no cosockets there; move the call into a "
    .. "rewrite/access/content handler or an ngx.timer.at callback", phase) }
end

-- The transport of that name, made on first use with the client's options.
local function made(self, name)
  local t = self.transports[name]
  if t then return t end
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
  t = mod.new(topts)
  self.transports[name] = t
  return t
end

--- The transport a `kind` of use ("call", "jobs", "batch") rides, here and now: a transport,
-- or nil, err. The one place the choice is made: a function of the caller's always; inside
-- nginx, cosockets (in a phase that has them: else a "phase" TransportError), unless the
-- client was made with transport = "curl"; jobs there would block the worker (ConfigError);
-- elsewhere, curl. Checked on every use, as one client may serve several phases.
-- @local
function Client:_transport(kind)
  local custom = self.transports.custom
  if custom then return custom end
  local cosockets, phase = compat.ngx_phase()
  local t, err
  if phase ~= nil and self.transport_choice ~= "curl" then
    if kind == "jobs" then
      return nil, errors.ConfigError.new{ message = "jobs run on libcurl's multi handle, which "
        .. "would block an nginx worker: inside nginx use client:batch_recall_update "
        .. "(ngx.thread), or make the client with transport = \"curl\"" }
    end
    if not cosockets then return nil, phase_error(phase) end
    t, err = made(self, "ngx")
  else
    t, err = made(self, "curl")
  end
  if t then self.transport_name = t.name end
  return t, err
end

-- ---------------------------------------------------------------------------------------
-- The methods of every endpoint, made from its name E: E, start_E, prepare_E, batch_E (and
-- the names a first version used). LDoc sees them through the comments below, written for
-- recall_update; each endpoint's are the same.

--- Sends a task (Edit Task, Auto-Recall) and waits for the answer, retrying as the client's
-- options say. Inside nginx it waits on cosockets, not blocking the worker. Also known as
-- `update_recall_task`, its first name.
-- @function Client:recall_update
-- @tparam table task the task (the Edit Task body; `itnio.recall` builds one)
-- @tparam[opt] table opts `passthrough` (as for `itnio.new`), `deadline` (seconds for this
-- call, instead of the client's)
-- @treturn table the answer, `{ code = 0, message, data, http_status, attempts }`
-- @return[2] nil
-- @treturn[2] table the error, of a class of `itnio.errors`
-- @raise when task is not a table, or opts is not a table or has an unknown name or a bad value
-- A call that ended before it began (a broken body, a closed client, no transport here):
-- on_call hears of it too.
local function failed(self, e, err)
  call.event(self, e, nil, err)
  return nil, err
end

local function call_method(e, fname)
  return function(self, body, opts)
    if opts ~= nil then args.options(opts, CALL_OPTS, 2, fname) end
    local encoded, err = call.encode(self, e, body, opts, fname)
    if not encoded then return failed(self, e, err) end
    if self.closed then return failed(self, e, call.closed_error()) end
    local transport, terr = self:_transport("call")
    if not transport then
      terr.attempts = 0
      return failed(self, e, terr)
    end
    -- Retries wait with compat.sleep: ngx.sleep inside nginx, where it does not block the worker.
    return call.run(call.new(self, e, encoded, opts), transport, compat.sleep)
  end
end

--- The request that `recall_update` would send first, for a dry run: it sends nothing, and
-- the Sign header is shown as `"<redacted>"`.
-- @function Client:prepare_recall_update
-- @tparam table task the task (the Edit Task body; `itnio.recall` builds one)
-- @tparam[opt] table opts `passthrough` (as for `itnio.new`)
-- @treturn table the request, `{ method, url, headers, body }`
-- @return[2] nil
-- @treturn[2] ValidationError every rule the task breaks
-- @raise when task is not a table, or opts is not a table or has an unknown name or a bad value
local function prepare_method(e, fname)
  return function(self, body, opts)
    if opts ~= nil then args.options(opts, CALL_OPTS, 2, fname) end
    local encoded, err = call.encode(self, e, body, opts, fname)
    if not encoded then return nil, err end
    return { method = e.method, url = self.urls[e.name], body = encoded,
             headers = call.headers(self, call.timestamp(self), "<redacted>") }
  end
end

--- Starts a job for a task and returns at once: nothing is sent until `client:poll` runs.
-- @function Client:start_recall_update
-- @tparam table task the task (the Edit Task body)
-- @tparam[opt] table opts `passthrough`, `deadline` (as for `recall_update`), and
-- `on_done(res, err, job)`, called from `poll` when the job ends
-- @treturn Job the job
-- @return[2] nil
-- @treturn[2] table a `ValidationError` (nothing was sent), or a `TransportError` when no job
-- can start (the client is closed; no file descriptor left for the multi handle)
-- @raise when task is not a table, or opts has an unknown name or a bad value
local function start_method(e, fname)
  return function(self, body, opts)
    if opts ~= nil then args.options(opts, START_OPTS, 2, fname) end
    local on_done = opts and opts.on_done
    if on_done ~= nil and type(on_done) ~= "function" then
      args.bad(2, fname, "opts.on_done must be a function")
    end
    local encoded, err = call.encode(self, e, body, opts, fname)
    if not encoded then return failed(self, e, err) end
    local job
    job, err = jobs.start(self, e, encoded, opts, nil, on_done)
    if not job then return failed(self, e, err) end
    return job
  end
end

--- Sends many tasks, at most `concurrency` at once, and returns when every one has an
-- outcome: on the client's jobs outside nginx, on `ngx.thread` light threads inside it. The
-- list is checked before anything is sent. Also known as `update_recall_tasks`.
-- @function Client:batch_recall_update
-- @tparam {table,...} tasks the tasks, 1..n
-- @tparam[opt] table opts `concurrency` (16), `deadline` (seconds for the whole batch),
-- `on_done(res, err, index)`, `passthrough`, `retry_budget` (retries the batch may spend;
-- default max(concurrency, 10% of the tasks); a success earns 0.1 back)
-- @treturn {table,...} one per task, in order: `{ res = res }` or `{ err = err }`
-- @raise when tasks is not a list of tables (naming the index), or opts is malformed
local function batch_method(e, fname)
  return function(self, list, opts)
    return batch.run(self, e, list, opts, fname)
  end
end

for _, e in ipairs(endpoints.list) do
  local m = e.methods
  Client[m.call] = call_method(e, m.call)
  Client[m.prepare] = prepare_method(e, m.prepare)
  Client[m.start] = start_method(e, m.start)
  Client[m.batch] = batch_method(e, m.batch)
  if e.older.call then Client[e.older.call] = call_method(e, e.older.call) end
  if e.older.batch then Client[e.older.batch] = batch_method(e, e.older.batch) end
end

--- Advances every job of the client: starts what is due, reads what the sockets have, runs
-- the callbacks of the jobs that ended. With no timeout (or 0) it never waits.
-- @tparam[opt=0] number timeout seconds to wait for a job to end (0 to 86400)
-- @treturn int how many jobs are not done
-- @raise when timeout is not a number from 0 to 86400
function Client:poll(timeout)
  if timeout == nil then timeout = 0 end
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 or timeout > 86400 then
    args.bad(1, "poll", "timeout must be a number of seconds from 0 to 86400")
  end
  return jobs.poll(self, timeout)
end

--- Ends the jobs in flight (no callback runs) and releases the connections. Later calls on the
-- client return a TransportError whose `reason` is `"closed"`.
function Client:close()
  self.closed = true
  jobs.close(self)
  for _, t in pairs(self.transports) do t:close() end
end

return _M
