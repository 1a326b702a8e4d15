--- lua-itnio: the ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua.
--
--     local itnio = require "itnio"
--     local client = assert(itnio.new{ api_key = ..., api_secret = ... })
--     local res, err = client:recall_update(task)
--     -- res.code == 0; or res is nil, and err is an error of itnio.errors
--
-- Every endpoint the core knows gets four methods, made from its name E (`recall_update`):
-- `client:E` (the call), `client:start_E` (a job), `client:prepare_E` (the request, for a dry
-- run) and `client:batch_E` (many at once). Failures come back as `nil, err`; programming
-- errors (a wrong argument type) raise.
-- @module itnio
local core      = require "itnio.core"
local errors    = require "itnio.errors"
local options   = require "itnio.internal.options"
local compat    = require "itnio.internal.compat"
local secrets   = require "itnio.internal.secrets"
local call      = require "itnio.internal.call"
local outcome   = require "itnio.internal.outcome"
local runner    = require "itnio.internal.runner"
local batch     = require "itnio.internal.batch"
local endpoints = require "itnio.internal.endpoints"
local limiter   = require "itnio.internal.limiter"
local state     = require "itnio.internal.state"
local store     = require "itnio.internal.store"
-- Loaded now, not on first use: with no file descriptor left, a require fails as "not found".
local curl      = require "itnio.internal.curl"
local custom    = require "itnio.internal.custom"

local type, tostring, tonumber, ipairs, pairs, pcall = type, tostring, tonumber, ipairs, pairs, pcall
local setmetatable = setmetatable
local sub, find, format = string.sub, string.find, string.format

local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

options.mine()

local _M = {}

--- The version of lua-itnio (csrc/itnio.h writes it), as "major.minor.patch".
_M._VERSION = core._VERSION

--- The error classes (the module itnio.errors).
_M.errors = errors

local DEFAULT_BASE_URL = "https://api.itniotech.com"

local Client = {}
local client_mt = { __index = Client, __name = "itnio.Client" }

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
  return scheme, host:lower(), scheme .. "://" .. host .. (port and (":" .. port) or "") .. rest
end

-- Why opts[name] is not text of one line (required: not absent, not empty), or nil.
local function bad_text(opts, name, required)
  local v = opts[name]
  if v == nil then return required and (name .. " is required") or nil end
  if type(v) ~= "string" then return name .. " must be a string, got " .. type(v) end
  if required and v == "" then return name .. " must not be empty" end
  if find(v, "%c") then return name .. " must not contain control characters (CR, LF...)" end
  return nil
end

-- The options itnio.new knows; any other name is a ConfigError (a typo would pass silently).
local NEW_OPTS = options.set{
  "api_key", "api_secret", "base_url", "timeout", "connect_timeout", "max_retries", "backoff_base",
  "backoff_cap", "max_retry_after", "deadline", "cafile", "capath", "proxy", "user_agent",
  "max_body", "insecure", "allow_http", "logger", "transport", "passthrough", "rate", "burst",
  "breaker", "on_call", "shared_dict", "store",
}
-- The number options: name, least, most, default (nil: none), whole.
local NUMBERS = {
  { "timeout", 0.001, 86400, 10 }, { "connect_timeout", 0.001, 86400, 3 },
  { "max_retries", 0, 100, 2, true }, { "backoff_base", 0, 3600, 0.5 }, { "backoff_cap", 0, 3600, 8 },
  { "max_retry_after", 0, 86400, 60 }, { "deadline", 0.001, 86400, nil },
  { "max_body", 1, 1024 * 1024 * 1024, 1024 * 1024 },
}
local CALL_OPTS  = options.set{ "passthrough", "deadline" }
local START_OPTS = options.set{ "passthrough", "deadline", "on_done" }

-- opts of itnio.new, checked: the client's config (option values only), or nil, why.
local function configure(opts)
  local why = options.unknown(opts, NEW_OPTS)
  if why then return nil, why end
  for _, name in ipairs{ "api_key", "api_secret" } do
    why = bad_text(opts, name, true)
    if why then return nil, why end
  end
  for _, name in ipairs{ "cafile", "capath", "user_agent" } do
    why = bad_text(opts, name, false)
    if why then return nil, why end
  end
  if opts.proxy ~= true then
    why = bad_text(opts, "proxy", false)
    if why then return nil, why .. " (a proxy URL, or true for the environment's)" end
  end
  for _, name in ipairs{ "insecure", "allow_http", "passthrough" } do
    if opts[name] ~= nil and type(opts[name]) ~= "boolean" then return nil, name .. " must be a boolean" end
  end
  local cfg = { passthrough = opts.passthrough == true }
  for _, n in ipairs(NUMBERS) do
    local name, lo, hi, dflt, whole = n[1], n[2], n[3], n[4], n[5]
    local v = opts[name]
    if v == nil then
      v = dflt
    elseif not options.is_number(v, lo, hi, whole) then
      return nil, format("%s must be a %s from %s to %s", name, whole and "whole number" or "number",
                         tostring(lo), tostring(hi))
    end
    cfg[name] = v
  end
  if opts.rate ~= nil or opts.burst ~= nil then
    if opts.rate == nil then return nil, "burst needs a rate" end
    why = limiter.check(opts.rate, opts.burst)
    if why then return nil, why end
    cfg.rate, cfg.burst = opts.rate, opts.burst
  end
  if opts.breaker ~= nil then
    why = state.check_breaker(opts.breaker)
    if why then return nil, why end
    cfg.breaker = { failures = opts.breaker.failures, cooldown = opts.breaker.cooldown }
  end
  for _, name in ipairs{ "logger", "on_call" } do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      return nil, name .. (name == "logger" and " must be a function(level, message, fields)"
                                              or " must be a function(event)")
    end
  end
  if opts.shared_dict ~= nil then
    if type(opts.shared_dict) ~= "string" or opts.shared_dict == "" then
      return nil, "shared_dict must be the name of a lua_shared_dict"
    end
    if not (ngx and ngx.shared) then
      return nil, "shared_dict works inside nginx only (a lua_shared_dict is shared by nginx's "
        .. "workers); outside nginx, leave it unset"
    end
  end
  if opts.store ~= nil then
    cfg.store, why = store.parse(opts.store)
    if not cfg.store then return nil, why end
  end
  local t = opts.transport
  if t == "ngx" and not (ngx and ngx.socket and ngx.socket.tcp) then
    return nil, 'transport "ngx" needs OpenResty (nginx with its Lua module): outside nginx, '
      .. 'leave transport unset or use "curl"'
  elseif t ~= nil and t ~= "curl" and t ~= "ngx" and type(t) ~= "function" then
    return nil, 'transport must be "curl", "ngx" or a function(request)'
  end
  return cfg
end

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
--   included, `burst` (a whole number, 1 unless given) of them at once after a quiet spell.
--   Every path waits its turn: the blocking call sleeps (`ngx.sleep` inside nginx), jobs and
--   the batch wait on a timer `poll` checks. The seconds a call waited for it are its
--   result's and its error's `waited`;
-- - `breaker = { failures = n, cooldown = seconds }`: after n failures in a row worth
--   retrying (no answer, HTTP 429 or 5xx, -18; counted across calls), calls fail at once with
--   a `CircuitOpenError` for `cooldown` seconds; then one trial call goes, and its outcome
--   closes the breaker or opens it again (off unless given);
-- - `on_call = function(ev)`: called once per call when it ends, on every path, with
--   `{ endpoint, outcome ("ok" or the error's class), code, http_status, attempts, duration,
--   waited, reused }`; one that raises does not break the call;
-- - `shared_dict`: inside nginx, the name of a `lua_shared_dict` where the clock offset, the
--   rate limit, the breaker and the batch's retry budget live, shared by every worker; outside
--   nginx a ConfigError;
-- - `store`: `"redis://[user:password@]host[:port][/db]"`, or `{ url, timeout (0.1 s),
--   connect_timeout (0.05 s), pool_size (32, inside nginx), prefix ("itnio") }`: the same state
--   in Redis, shared by every client of every machine on the account, one round trip before
--   and one after an attempt; when the store is away, each client goes on with state of its
--   own (or the `shared_dict`'s), pacing at its share of the rate (doc/store.md).
--
-- The options stay apart from the client's methods, in `client.config`.
-- @tparam table opts the options above
-- @treturn Client the client
-- @return[2] nil
-- @treturn[2] ConfigError what is wrong with the options
-- @raise when opts is not a table
function _M.new(opts)
  if type(opts) ~= "table" then options.bad("new", 1, "table expected, got " .. type(opts)) end
  local cfg, why = configure(opts)
  if not cfg then return config_error(why) end
  local scheme, host, base = parse_base_url(opts.base_url or DEFAULT_BASE_URL)
  if not scheme then return config_error(host) end
  if scheme == "http" and not is_loopback(host) and opts.allow_http ~= true then
    return config_error("base_url is plain http to " .. host .. ": the key and the task would "
      .. "travel unencrypted; use https, or pass allow_http = true")
  end
  cfg.logger, cfg.on_call = opts.logger, opts.on_call
  local self = { config = cfg, base_url = base, api_key = opts.api_key, urls = {}, transports = {} }
  for _, e in ipairs(endpoints.list) do self.urls[e.name] = base .. e.path end
  self.state, why = state.new(self, { rate = cfg.rate, burst = cfg.burst, breaker = cfg.breaker,
                                      shared_dict = opts.shared_dict, store = cfg.store })
  if not self.state then return config_error(why) end
  -- Whether an attempt asks the state first (a rate limit's slot, the breaker, the store).
  self.asks = cfg.rate ~= nil or cfg.breaker ~= nil or cfg.store ~= nil
  local t = opts.transport
  if type(t) == "function" then self.transports.custom = custom.new(t) else self.transport_choice = t end
  self.transport_opts = {
    cafile = opts.cafile, capath = opts.capath, proxy = opts.proxy, max_body = cfg.max_body,
    user_agent = opts.user_agent, insecure = opts.insecure == true, connect_timeout = cfg.connect_timeout,
  }
  setmetatable(self, client_mt)
  secrets.keep(self, opts.api_secret)
  if opts.insecure == true then
    self:_log("warn", "itnio: TLS verification is OFF (insecure = true): anyone on the path "
      .. "can read and change requests; never use this in production", { base_url = base }, true)
  end
  return self
end

function client_mt.__tostring(self)
  return format("itnio.Client(%s, key %s...)", self.base_url, sub(self.api_key, 1, 3))
end

-- Hands a line to the caller's logger; with no logger, only `loud` lines reach stderr.
function Client:_log(level, message, fields, loud)
  local logger = self.config.logger
  if logger then
    pcall(logger, level, message, fields)   -- a broken logger must not break the call
  elseif loud then
    io.stderr:write(message, "\n")
  end
end

-- A callback of the caller's raised: the client's logger hears it each time; with no logger,
-- stderr hears it once per client. Never raises. (The jobs' and the batch's one policy.)
function Client:_callback_raised(why, fields)
  local which = fields and fields.callback or "on_done"
  local msg = "itnio: an " .. which .. " callback raised: " .. secrets.redact(self, errors.text(why))
  if self.config.logger then
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
    local loaded, m = pcall(require, "itnio.internal.cosocket")
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

-- The transport a `kind` of use ("call", "jobs", "batch") rides, here and now: a transport,
-- or nil, err. The one place the choice is made: a function of the caller's always; inside
-- nginx, cosockets (in a phase that has them: else a "phase" TransportError), unless the
-- client was made with transport = "curl"; jobs there would block the worker (ConfigError);
-- elsewhere, curl. Checked on every use, as one client may serve several phases.
function Client:_transport(kind)
  local own = self.transports.custom
  if own then
    self.transport_name = own.name
    return own
  end
  local cosockets, phase = compat.ngx_phase()
  local t, err
  if phase ~= nil and self.transport_choice ~= "curl" then
    if kind == "jobs" then
      return nil, errors.ConfigError.new{ message = "jobs run on libcurl's multi handle, which "
        .. "would block an nginx worker: inside nginx use a batch (ngx.thread), or make the "
        .. "client with transport = \"curl\"" }
    end
    if not cosockets then return nil, phase_error(phase) end
    t, err = made(self, "ngx")
  else
    t, err = made(self, "curl")
  end
  if t then self.transport_name = t.name end   -- (what the last use rode: for a look, not a choice)
  return t, err
end

-- A call that ended before it began (a broken body, a closed client, no transport here):
-- on_call hears of it too.
local function refused(self, e, err)
  call.event(self, e, nil, err)
  return nil, err
end

-- The per-call options, checked (a programming error raises, naming fname); and the body.
local function encode(self, e, body, opts, known, fname)
  if type(body) ~= "table" then options.bad(fname, 1, "table expected, got " .. type(body)) end
  local passthrough = self.config.passthrough
  if opts ~= nil then
    options.check(opts, known, fname, 2)
    local p, d = opts.passthrough, opts.deadline
    if p ~= nil and type(p) ~= "boolean" then
      options.bad(fname, 2, "opts.passthrough must be a boolean, got " .. type(p))
    end
    if d ~= nil and not (options.is_number(d, 0, 86400) and d > 0) then
      options.bad(fname, 2, "opts.deadline must be seconds, more than 0 and at most 86400")
    end
    if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
      options.bad(fname, 2, "opts.on_done must be a function")
    end
    if p ~= nil then passthrough = p end
  end
  return call.encode(e, body, passthrough)
end

-- ---------------------------------------------------------------------------------------
-- The methods of every endpoint, made from its name E: E, start_E, prepare_E, batch_E. LDoc
-- sees them through the comments below, written for recall_update; each endpoint's are the
-- same.

--- Sends a task (Edit Task, Auto-Recall) and waits for the answer, retrying as the client's
-- options say. Inside nginx it waits on cosockets, not blocking the worker.
-- @function Client:recall_update
-- @tparam table task the task (the Edit Task body; `itnio.recall` builds one)
-- @tparam[opt] table opts `passthrough` (as for `itnio.new`), `deadline` (seconds for this
-- call, instead of the client's)
-- @treturn table the answer, `{ code = 0, message, data, http_status, attempts, headers }`
-- @return[2] nil
-- @treturn[2] table the error, of a class of `itnio.errors`
-- @raise when task is not a table, or opts is not a table or has an unknown name or a bad value
local function call_method(e, fname)
  return function(self, body, opts)
    local encoded, err = encode(self, e, body, opts, CALL_OPTS, fname)
    if not encoded then return refused(self, e, err) end
    if self.closed then return refused(self, e, outcome.closed_error()) end
    local transport, terr = self:_transport("call")
    if not transport then
      terr.attempts = 0
      return refused(self, e, terr)
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
    local encoded, err = encode(self, e, body, opts, CALL_OPTS, fname)
    if not encoded then return nil, err end
    local ts = format("%d", call.epoch_second(self))
    return { method = e.method, url = self.urls[e.name], body = encoded,
             headers = secrets.headers(self, ts, secrets.REDACTED) }
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
    local encoded, err = encode(self, e, body, opts, START_OPTS, fname)
    if not encoded then return refused(self, e, err) end
    local job
    job, err = runner.start(self, e, encoded, opts, opts and opts.on_done)
    if not job then return refused(self, e, err) end
    return job
  end
end

--- Sends many tasks, at most `concurrency` at once, and returns when every one has an
-- outcome: on the client's jobs outside nginx, on `ngx.thread` light threads inside it. The
-- list is checked before anything is sent.
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
end

--- Advances every job of the client: starts what is due, reads what the sockets have, runs
-- the callbacks of the jobs that ended. With no timeout (or 0) it never waits.
-- @tparam[opt=0] number timeout seconds to wait for a job to end (0 to 86400)
-- @treturn int how many jobs are not done
-- @raise when timeout is not a number from 0 to 86400
function Client:poll(timeout)
  if timeout == nil then timeout = 0 end
  if not options.is_number(timeout, 0, 86400) then
    options.bad("poll", 1, "timeout must be a number of seconds from 0 to 86400")
  end
  return runner.poll(self, timeout)
end

--- For a host's own event loop (luv, cqueues, Neovim's `vim.loop`, an epoll server): a
-- descriptor to watch for reading. It becomes readable whenever the client's jobs have work
-- on their sockets (the transfers, and the store's connection); then call `poll(0)`. With
-- `events` and `timeout` it is cqueues' pollable protocol: `cqueues.poll(client)` works as
-- it is. nil where there is none: the poll(2) build (macOS, the BSDs; there, call `poll(0)`
-- at `timeout()` and at most every few milliseconds while jobs are in flight), or a client
-- whose jobs ride a transport function of the caller's.
-- @treturn int|nil the descriptor (the multi handle's epoll set; the client owns it)
-- @treturn[2] string why there is none
function Client:pollfd()
  return runner.pollfd(self)
end

--- The events to watch `pollfd` for: always `"r"` (readable).
-- @treturn string "r"
function Client:events()   -- luacheck: ignore 212 (self: the protocol's)
  return "r"
end

--- For a host's own event loop: the seconds until `poll(0)` has work with no I/O (libcurl's
-- timers, retry backoff, Retry-After, the rate limit's slots, deadlines, the store's
-- commands), 0 when it has work now (right after a job starts), nil when nothing waits on
-- time (no job in flight, or only a socket can bring news).
-- @treturn number|nil seconds
function Client:timeout()
  return runner.timeout(self)
end

--- Ends the jobs in flight (no callback runs) and releases the connections. Later calls on the
-- client return a TransportError whose `reason` is `"closed"`.
function Client:close()
  self.closed = true
  runner.close(self)
  for _, t in pairs(self.transports) do t:close() end
end

--- A job: a call that runs while the host's own loop goes on (`client:start_recall_update`).
-- @type Job

--- Whether the job has ended (with a result or an error).
-- @function Job:done
-- @treturn boolean true once it has

--- What the blocking call (`client:recall_update`) would have returned for the job's task.
-- @function Job:result
-- @treturn table the answer, `{ code = 0, message, data, http_status, attempts }`
-- @return[2] nil
-- @treturn[2] table the error, of a class of `itnio.errors`
-- @raise when the job is not done yet (a programming error: poll until `job:done()`)

--- Stops the job. It ends with a TransportError whose `reason` is `"cancelled"` (its `sent`
-- says whether any byte of it left); its `on_done` runs in the next `poll`.
-- @function Job:cancel
-- @treturn boolean true if the job was running, false if it had ended already

return _M
