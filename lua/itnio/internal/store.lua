--- Private to lua-itnio. The account's state across machines, in Redis (`itnio.new{ store =
-- "redis://..." }`): the rate limit, the breaker, the batch's retry budget and the clock
-- offset, for every client of every machine on one account, each in one round trip that
-- Redis runs atomically (a script, EVALSHA, EVAL again after a SCRIPT FLUSH), on Redis's
-- own clock (TIME).
--
--     local st, why = store.new(client, spec, fallback)   -- spec: the option; fallback: the
--                                                         -- client's own state (or the dict's)
--     st:before(c, now)  -> "go" | "wait", s | "again", s | "open", s    (a blocking round trip)
--     st:after(c, facts) -> took                             (a blocking round trip)
--     st:before_command(c, now) / st:before_reply(c, value, failure)   the same, for jobs
--     st:after_command(c, facts) / st:after_reply(c, facts, value, failure)
--
-- When the store cannot answer (a timeout, a refused connection, READONLY after a failover,
-- a refused password), nothing fails and nothing waits past the store's timeout: the
-- fallback paces at this client's share of the rate (the rate over the clients the store
-- last counted in the last 30 s), and keeps the breaker and the budget; the offset is the
-- last one known. A breaker around the store itself lets at most one command an interval
-- pay its timeout (1 s, doubling to 30 s while it times out); the logger hears once when the
-- store is lost and once when it is back. Keys are `<prefix>:{<hash of the api_key>}:...`
-- (one hash tag: one slot, for a cluster-aware proxy), and every key expires.
local core    = require "itnio.core"
local compat  = require "itnio.internal.compat"
local options = require "itnio.internal.options"

local type, tostring, tonumber, pairs, ipairs, pcall = type, tostring, tonumber, pairs, ipairs, pcall
local setmetatable = setmetatable
local floor, min, max, random = math.floor, math.min, math.max, math.random
local find, format = string.find, string.format
local unpack = table.unpack or unpack   -- luacheck: ignore 113 (5.1's)
local wall = compat.wall

local _M = {}

-- ---------------------------------------------------------------------------------------
-- The option

local STORE_OPTS = options.set{ "url", "timeout", "connect_timeout", "pool_size", "prefix" }

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- The store option, checked: `{ host, port, db, user, password, timeout, connect_timeout,
-- pool_size, prefix }`, or nil and why (a sentence that names `store`, and never the password).
-- @param spec a redis URL, or a table `{ url, timeout, connect_timeout, pool_size, prefix }`
function _M.parse(spec)
  local o = {}
  if type(spec) == "table" then
    local why = options.unknown(spec, STORE_OPTS)
    if why then return nil, "store: " .. why end
    for k, v in pairs(spec) do o[k] = v end
  elseif type(spec) == "string" then
    o.url = spec
  else
    return nil, "store must be a redis URL (redis://[user:password@]host[:port][/db]) or a table "
      .. "{ url = ... }, got " .. type(spec)
  end
  local url = o.url
  if type(url) ~= "string" then return nil, "store.url must be a redis URL (redis://host[:port][/db])" end
  if find(url, "[%s%c]") then return nil, "store must not contain white space or control characters" end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  if scheme == "rediss" then
    return nil, "store: rediss:// (Redis over TLS) is not available with this build (Debian 12's hiredis "
      .. "and lua-resty-redis have no TLS): reach the store over a private network, or through a TLS "
      .. "tunnel (stunnel, spiped) on this machine, with redis://127.0.0.1:PORT"
  end
  if scheme ~= "redis" then
    return nil, "store must be a redis:// URL, got " .. (scheme and (scheme .. "://") or "no scheme")
  end
  local auth, hostpart = rest:match("^(.*)@([^@]*)$")
  hostpart = hostpart or rest
  local user, password
  if auth then
    user, password = auth:match("^([^:]*):(.*)$")
    if not user then user, password = "", auth end   -- redis://password@host
    user, password = percent_decode(user), percent_decode(password)
    if user == "" then user = nil end
    if password == "" then password = nil end
  end
  local host, tail = hostpart:match("^%[([%x:.]+)%](.*)$")
  if not host then host, tail = hostpart:match("^([^:/]*)(.*)$") end
  if not host or host == "" then return nil, "store: the URL has no host (redis://host[:port][/db])" end
  local port, after = tail:match("^:(%d+)(.*)$")
  if port then
    tail = after
    port = tonumber(port)
    if port < 1 or port > 65535 then return nil, "store: the port must be from 1 to 65535" end
  elseif tail:find("^:") then
    return nil, "store: the port must be a number from 1 to 65535"
  end
  local db
  if tail ~= "" and tail ~= "/" then
    db = tail:match("^/(%d+)$")
    if not db then return nil, "store: the database must be a number (redis://host[:port]/NUMBER)" end
    db = tonumber(db)
    if db > 1048576 then return nil, "store: the database number is too large" end
  end
  local r = { host = host, port = port or 6379, db = db or 0, user = user, password = password,
              timeout = o.timeout or 0.1, connect_timeout = o.connect_timeout or 0.05,
              pool_size = o.pool_size or 32, prefix = o.prefix or "itnio" }
  for _, n in pairs{ "timeout", "connect_timeout" } do
    if not options.is_number(r[n], 0.001, 60) then
      return nil, "store." .. n .. " must be seconds from 0.001 to 60"
    end
  end
  if not options.is_number(r.pool_size, 1, 10000, true) then
    return nil, "store.pool_size must be a whole number from 1 to 10000"
  end
  if type(r.prefix) ~= "string" or not r.prefix:find("^[%w_.:-]+$") or #r.prefix > 64 then
    return nil, "store.prefix must be up to 64 letters, digits and _.:-"
  end
  return r
end

-- ---------------------------------------------------------------------------------------
-- The scripts: each one round trip, atomic, on Redis's clock. Times in microseconds.

-- KEYS: rate, open, trial, offset, members, fails. ARGV: member, interval, tau, horizon (us),
-- breaker (0/1), trial ms. -> { verdict, us, members, offset, sec, usec, quiet }; verdict 0
-- go (after us), 1 open (us left), 2 a trial runs elsewhere (us left), 3 the next slot is
-- past the horizon (us until it; nothing booked); quiet 1: no failure counted and no trial
-- claimed here, so that a success has nothing to tell the breaker.
local BEFORE = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[5], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 30000000)
redis.call('PEXPIRE', KEYS[5], 60000)
local n = redis.call('ZCARD', KEYS[5])
local offset = redis.call('GET', KEYS[4])
if ARGV[5] == '1' then
  local open = tonumber(redis.call('GET', KEYS[2]) or '')
  if open then
    if now < open then return { 1, open - now, n, offset, t[1], t[2] } end
    if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[6]) then
      return { 2, math.max(0, redis.call('PTTL', KEYS[3])) * 1000, n, offset, t[1], t[2] }
    end
  end
end
local quiet = 1
if ARGV[5] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 1 or tonumber(redis.call('GET', KEYS[6]) or '0') > 0 then quiet = 0 end
end
local wait = 0
local interval = tonumber(ARGV[2])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
  if tat < now then tat = now end
  local at = tat - tonumber(ARGV[3])
  if at < now then at = now end
  wait = at - now
  if wait > tonumber(ARGV[4]) then return { 3, wait, n, offset, t[1], t[2], quiet } end
  local nt = tat + interval
  redis.call('SET', KEYS[1], string.format('%.0f', nt), 'PX', math.floor((nt - now) / 1000) + 1000)
end
return { 0, wait, n, offset, t[1], t[2], quiet }
]]

-- KEYS: fails, open, trial, budget, offset. ARGV: evidence ('ok', 'fail' or ''), failures,
-- cooldown ms, trial ms, budget op ('earn', 'take' or ''), capacity, earn, the server's Date
-- (seconds, or ''). -> { took (1/0), sec, usec, the budget's tokens after (-1: not asked) }
local AFTER = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ev = ARGV[1]
local cooldown = tonumber(ARGV[3])
local function open()
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('SET', KEYS[2], string.format('%.0f', now + cooldown * 1000), 'PX', cooldown + tonumber(ARGV[4]))
end
if ev == 'ok' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
elseif ev == 'fail' then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    open()
  else
    local f = redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', KEYS[1], math.max(60000, cooldown * 4))
    if f >= tonumber(ARGV[2]) then open() end
  end
end
local took, tokens = 1, -1
local op = ARGV[5]
if op ~= '' then
  local cap = tonumber(ARGV[6])
  local v = tonumber(redis.call('GET', KEYS[4]) or '') or cap
  if op == 'take' then
    if v >= 1 then v = v - 1 else took = 0 end
  else
    v = math.min(cap, v + tonumber(ARGV[7]))
  end
  redis.call('SET', KEYS[4], tostring(v), 'EX', 86400)
  tokens = v
end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[5], string.format('%.0f', tonumber(ARGV[8]) - tonumber(t[1])), 'EX', 86400)
end
return { took, t[1], t[2], string.format('%.17g', tokens) }
]]

local SHA = { before = core.sha1(BEFORE), after = core.sha1(AFTER) }
local TEXT = { before = BEFORE, after = AFTER }
_M.SCRIPTS = TEXT

-- The horizon of a booking: a flood of callers cannot book the account's slots further ahead.
local HORIZON = 5

-- ---------------------------------------------------------------------------------------
-- The store's own breaker

-- Failures that mean the store is away (as opposed to a bug of ours), by reason; an error
-- reply is one when its text says so.
local function away_kind(fail)
  local r = fail.reason
  if r == "error" then
    local m = tostring(fail.message)
    if find(m, "^READONLY") then return "read-only (a replica, after a failover?)" end
    if find(m, "^NOAUTH") or find(m, "^WRONGPASS") or find(m, "^NOPERM") then return "auth" end
    return "error"
  end
  return r
end

local Store = {}
Store.__index = Store

-- What a process knows of a store, shared by its clients (a client made per request must not
-- pay the timeout again): its health, by address and login; the count of clients it last said and the
-- offset, by account. (Weak: forgotten with the last client that holds them.)
local HEALTH = setmetatable({}, { __mode = "v" })
local SEEN = setmetatable({}, { __mode = "v" })

-- Whether a command may go to the store now (else the fallback answers at once). While it is
-- away, one command an interval probes it (inside nginx, a timer: Cosocket:probe); a probe
-- that never ends (its job cancelled, its client closed) frees the way after twice the
-- store's timeouts.
function Store:usable(now)
  local h = self.health
  if not h.down_until then return true end
  if now < h.down_until or (h.probing and now < h.probing) then return false end
  h.probing = now + 2 * (self.o.timeout + self.o.connect_timeout)
  if self.conn.probe and self.conn:probe(self) then return false end   -- (nobody waits for it)
  return true
end

-- The store answered: back, if it was away.
function Store:answered()
  local h = self.health
  h.probing = nil
  if h.down_until then
    h.down_until, h.interval, h.said_auth = nil, nil, nil
    self.client:_log("info", "itnio: the store (" .. self.where .. ") answers again: the account's state "
      .. "is shared again", { store = self.where })
  end
end

-- How long the store is left alone after a failure that cost no wait (a refused connection
-- or login, READONLY): short, as a probe costs nothing, and each client comes back within it.
local FAST = 0.25

-- The store failed to answer: away for an interval (1 s, doubling to 30 s while commands time
-- out, as each such probe costs a caller its timeout; FAST for the failures that cost none).
-- The logger hears it once, from the client that found it so, until the store answers again.
function Store:lost(now, fail, quick)
  local h = self.health
  if h.down_until and not h.probing then return end   -- (a command sent before it was lost)
  h.probing = nil
  local kind = away_kind(fail)
  local step = h.interval or (kind == "timeout" and 1 or FAST)
  h.interval = kind == "timeout" and min(30, step * 2) or FAST
  if quick then step, h.interval = FAST, FAST end
  local first = not h.down_until
  h.down_until = now + step
  local auth = kind == "auth" and not h.said_auth
  if auth then h.said_auth = true end
  if first then
    local why = (auth and "the store refused the credentials (" .. tostring(fail.message) .. ")")
      or kind .. ": " .. tostring(fail.message)
    self.client:_log("warn", "itnio: the store (" .. self.where .. ") is away, " .. why .. ": each client "
      .. "goes on with state of its own, pacing at its share of the rate", { store = self.where }, true)
  elseif auth then   -- (away for another reason first: a refused login is said too, once)
    self.client:_log("warn", "itnio: the store (" .. self.where .. ") refused the credentials ("
      .. tostring(fail.message) .. "): check the store's user and password", { store = self.where }, true)
  end
end

-- ---------------------------------------------------------------------------------------
-- Before an attempt

local function us(seconds) return format("%.0f", seconds * 1e6) end

--- The command of the round trip before an attempt: EVALSHA's arguments.
-- @tparam table c the call
-- @tparam number now the time (compat.now's clock)
function Store:before_command(c, now)
  local cfg = self.client.config
  local horizon = HORIZON
  if c.deadline_at then horizon = max(0, min(horizon, c.deadline_at - now)) end
  local k = self.keys
  return { "EVALSHA", SHA.before, 6, k.rate, k.open, k.trial, k.offset, k.members, k.fails, self.member,
           cfg.rate and us(1 / cfg.rate) or "0", cfg.rate and us(((cfg.burst or 1) - 1) / cfg.rate) or "0",
           us(horizon), cfg.breaker and "1" or "0", format("%d", floor(self.trial_timeout * 1000)) }
end

-- What Redis's clock says of ours: the offset to add to the wall clock for the Timestamp.
local function learn_clock(self, value)
  local sec, usec = tonumber(value[5]), tonumber(value[6])
  if not (sec and usec) then return end
  local redis_now = sec + usec / 1e6
  local off = tonumber(value[4])   -- (none: the fleet knows none, or no longer, and nor do we)
  self.seen.offset = off and off + (redis_now - wall()) or nil
  local n = tonumber(value[3])
  if n and n >= 1 then self.seen.members = n end
end

--- The verdict of the round trip before an attempt: "go" | "wait", s (the slot booked: go
-- then) | "again", s (the next slot is past the horizon or the deadline: nothing booked, ask
-- again then) | "open", s (the breaker). A failure (value nil, fail) takes the fallback's.
-- @tparam table c the call
-- @param value the reply
-- @tparam[opt] table fail the failure
-- @tparam number now the time
function Store:before_reply(c, value, fail, now)
  if not value then
    self:lost(now, fail)
    return self:fallback_before(c, now)
  end
  self:answered()
  if type(value) ~= "table" then return self:fallback_before(c, now) end
  learn_clock(self, value)
  c.quiet = value[7] == 1   -- (a success then tells the breaker nothing)
  local verdict, t = tonumber(value[1]), (tonumber(value[2]) or 0) / 1e6
  if verdict == 1 or verdict == 2 then return "open", t end
  if verdict == 3 then return "again", min(1, max(0.01, t - HORIZON)) end
  return t > 0 and "wait" or "go", t
end

--- The fallback's verdict: its own breaker, and its share of the rate.
function Store:fallback_before(_, now)
  local fb = self.fallback
  local cfg = self.client.config
  if cfg.breaker then
    local left = fb:breaker_check(now)
    if left then return "open", left end
  end
  if cfg.rate then   -- (the machine's share, with a dict: its workers share it)
    local wait = fb:reserve(now, cfg.rate / (self.seen.members or 1))
    if wait > 0 then return "wait", wait end
  end
  return "go", 0
end

-- ---------------------------------------------------------------------------------------
-- After an attempt

--- Whether the round trip after an attempt is needed at all. None for a success with no
-- breaker and no budget; nor when the breaker has nothing to reset (the round trip before it
-- saw no failure counted and no trial) and the budget is full, as far as this process knows;
-- nor for this machine's own failure alone (its fallback hears it).
-- @tparam table c the call
-- @tparam table facts { evidence, budget, date }
function Store:needs(c, facts)
  if facts.date then return true end
  local ev, budget = facts.evidence, facts.budget
  if ev == "local" or (ev == "ok" and c.quiet) then ev = nil end   -- (nothing to reset)
  if budget == "earn" and self.seen.budget_full then budget = nil end   -- (nothing to earn)
  return ev ~= nil or budget ~= nil
end

--- The command of the round trip after an attempt.
-- @tparam table c the call
-- @tparam table facts `evidence` ("ok", "fail": for the fleet; "local": this machine's own
-- failure, which the fallback's breaker alone hears), `budget` ("earn", "take"), `date`
function Store:after_command(c, facts)
  local cfg, k = self.client.config, self.keys
  local b = cfg.breaker
  local ev = facts.evidence
  if ev == "local" then ev = nil end
  local budget = c.budget
  return { "EVALSHA", SHA.after, 5, k.fails, k.open, k.trial, k.budget, k.offset,
           (b and ev) or "", b and format("%d", b.failures) or "0",
           b and format("%d", floor(b.cooldown * 1000)) or "0",
           format("%d", floor(self.trial_timeout * 1000)), facts.budget or "",
           budget and format("%.17g", budget.capacity) or "0",
           budget and format("%.17g", budget.earns) or "0",
           facts.date and format("%d", facts.date) or "" }
end

--- What the round trip after an attempt says: whether the budget gave a retry (true when no
-- retry was asked for). A failure takes the fallback's answer, which hears the facts.
function Store:after_reply(c, facts, value, fail, now)
  if facts.evidence == "local" or not value then
    self:fallback_after(c, facts, now)   -- (a machine's own failure feeds its own breaker alone)
  elseif facts.evidence == "ok" and self.client.config.breaker then
    self.fallback:breaker_record(false, now)   -- (and a success closes it, ending its trial)
  end
  if not value then
    self:lost(now, fail)
    return self.fallback_took
  end
  self:answered()
  if type(value) ~= "table" then return true end
  local tokens, budget = tonumber(value[4]), c.budget
  if budget and tokens and tokens >= 0 then self.seen.budget_full = tokens >= budget.capacity end
  if facts.date then
    local sec, usec = tonumber(value[2]), tonumber(value[3])
    if sec and usec then self.seen.offset = facts.date - sec + (sec + usec / 1e6 - wall()) end
  end
  return facts.budget ~= "take" or value[1] == 1
end

function Store:fallback_after(c, facts, now)
  local fb = self.fallback
  if self.client.config.breaker and facts.evidence then
    fb:breaker_record(facts.evidence ~= "ok", now)
  end
  self.fallback_took = true
  local budget = c.budget
  if budget and facts.budget == "earn" then budget.local_budget:earn() end
  if budget and facts.budget == "take" then self.fallback_took = budget.local_budget:take() end
  if facts.date then self.seen.offset = facts.date - floor(wall()) end
end

-- ---------------------------------------------------------------------------------------
-- The blocking round trips (plain Lua, a C host; inside nginx, on cosockets)

-- Runs a command through conn: EVALSHA, and EVAL when the script is not loaded (after a
-- restart or a SCRIPT FLUSH); value, or nil, failure.
--- Whether a failure says the script is not loaded (Redis restarted, or SCRIPT FLUSH).
-- @param fail the failure
function _M.noscript(fail)
  return fail ~= nil and fail.reason == "error" and find(tostring(fail.message), "^NOSCRIPT") ~= nil
end

--- The same command with EVAL and the script's text instead of EVALSHA and its name.
-- @tparam table cmd an EVALSHA command of this module's
function _M.with_eval(cmd)
  local c = {}
  for i = 1, #cmd do c[i] = cmd[i] end
  c[1], c[2] = "EVAL", TEXT[cmd[2] == SHA.before and "before" or "after"]
  return c
end

local function evalsha(conn, cmd)
  local value, fail = conn:call(cmd)
  if not value and fail.reason == "closed" then   -- a kept connection the server had closed
    value, fail = conn:call(cmd)                   -- (a restart, an idle timeout): a new one
  end
  if not value and _M.noscript(fail) then value, fail = conn:call(_M.with_eval(cmd)) end
  return value, fail
end

--- The verdict without a round trip, when there must be one: this machine's own breaker is
-- open (its connect failures are its alone), or the store is away. nil: ask the store.
function Store:own(c, now)
  if self.client.config.breaker then
    local left = self.fallback:breaker_check(now)
    if left then return "open", left end
  end
  if not self:usable(now) then return self:fallback_before(c, now) end
end

--- Before an attempt, with a blocking round trip: "go" | "wait", s | "again", s | "open", s.
function Store:before(c, now)
  local v, t = self:own(c, now)
  if v then return v, t end
  local value, fail = evalsha(self.conn, self:before_command(c, now))
  return self:before_reply(c, value, fail, compat.now())
end

--- After an attempt, with no round trip (the store is away, or the facts are this machine's
-- alone): the fallback records them; took.
function Store:skip_after(c, facts, now)
  self:fallback_after(c, facts, now)
  return self.fallback_took
end

--- After an attempt, with a blocking round trip (none when the facts need none): took.
function Store:after(c, facts, now)
  if not self:needs(c, facts) or not self:usable(now) then
    self:fallback_after(c, facts, now)
    return self.fallback_took
  end
  local value, fail = evalsha(self.conn, self:after_command(c, facts))
  return self:after_reply(c, facts, value, fail, compat.now())
end

--- The offset to add to the local wall clock for the Timestamp: the fleet's, or the last one
-- known, or the fallback's.
function Store:offset()
  return self.seen.offset or self.fallback:offset()
end

function Store:set_offset(v)   -- (the fallback's copy; the fleet's goes with the next round trip)
  self.fallback:set_offset(v)
end

--- The batch's retry budget, shared by the fleet; the fallback's beside it.
function Store:budget(capacity, earn)
  return { capacity = capacity, earns = earn or 0.1, store = true,
           local_budget = self.fallback:budget(capacity, earn) }
end

-- ---------------------------------------------------------------------------------------
-- Connections

-- A blocking connection of the core (hiredis): conn:call(cmd) -> value | nil, failure.
local Blocking = {}
Blocking.__index = Blocking
function Blocking:call(cmd)
  return self.rd:call(unpack(cmd))
end

-- A connection on nginx's cosockets (lua-resty-redis, which Debian's lua-nginx-redis installs
-- as nginx.redis), from nginx's keep-alive pool; AUTH and SELECT on a new connection only.
local Cosocket = {}
Cosocket.__index = Cosocket
function Cosocket:call(cmd)
  local o, redis = self.o, self.redis
  local red = redis:new()
  red:set_timeout(floor(o.connect_timeout * 1000))   -- (0.27 has one timeout: set for each step)
  local ok, err = red:connect(o.host, o.port, { pool = self.pool, pool_size = o.pool_size })
  if not ok then
    return nil, { reason = err == "timeout" and "timeout" or "connect", message = tostring(err) }
  end
  red:set_timeout(floor(o.timeout * 1000))
  if (red:get_reused_times() or 0) == 0 then   -- a new connection: AUTH and SELECT first
    local steps = {}
    if o.password then steps[1] = o.user and { "auth", o.user, o.password } or { "auth", o.password } end
    if o.db ~= 0 then steps[#steps + 1] = { "select", o.db } end
    for _, step in ipairs(steps) do
      local res, serr = red[step[1]](red, unpack(step, 2))
      if not res then
        red:close()
        return nil, { reason = res == false and "error" or "closed", message = tostring(serr) }
      end
    end
  end
  local res, cerr = red[cmd[1]:lower()](red, unpack(cmd, 2))
  if res == false then   -- an error reply: the connection is fine
    red:set_keepalive(60000, o.pool_size)
    return nil, { reason = "error", message = tostring(cerr) }
  end
  if res == nil then
    red:close()
    return nil, { reason = cerr == "timeout" and "timeout" or "closed", message = tostring(cerr) }
  end
  red:set_keepalive(60000, o.pool_size)
  if type(res) == "table" then
    for i = 1, #res do if res[i] == ngx.null then res[i] = false end end   -- luacheck: ignore 113 (ngx)
  end
  return res
end

--- A name for a client (or a machine) in the store's count of clients: unique among the
-- processes of a fleet without a seeded random (LuaJIT's and nginx workers' start alike):
-- the time, the process (nginx: its pid), a fresh table's address and a random, hashed.
function _M.member_id()
  local pid = ngx and ngx.worker and ngx.worker.pid and ngx.worker.pid() or ""   -- luacheck: ignore 113
  return core.sha1(format("%.6f %s %s %.17g %.17g", wall(), pid, tostring({}), compat.now(), random()))
    :sub(1, 16)
end

-- Inside nginx, the store is probed in a timer while it is away (a PING, through AUTH and
-- SELECT when the connection is new), so that no call waits for the probe, and each worker
-- is back within FAST of the store. false when no timer can be made here.
function Cosocket:probe(st)
  local ok = ngx.timer.at(0, function(premature)   -- luacheck: ignore 113 (ngx)
    if premature then return end
    local value, fail = self:call{ "PING" }
    if value then st:answered() else st:lost(compat.now(), fail, true) end
  end)
  return ok ~= nil
end

-- nginx's Redis client, under either name; or nil.
local function resty_redis()
  for _, name in pairs{ "resty.redis", "nginx.redis" } do
    local ok, m = pcall(require, name)
    if ok and type(m) == "table" and m.new then return m end
  end
  return nil
end

--- A new store for the client: nil, why when it cannot be used here. It sends nothing.
-- @tparam table client the client
-- @tparam table o the parsed option (parse)
-- @tparam table fallback the state to fall back on (the client's own, or the dict's)
-- @tparam[opt] boolean in_nginx inside nginx: cosockets
function _M.new(client, o, fallback, in_nginx)
  local hash = core.sign(client.api_key, "itnio.store", "0"):sub(1, 16)
  local base = o.prefix .. ":{" .. hash .. "}:"
  local self = setmetatable({
    client = client, fallback = fallback, o = o,
    where = "redis://" .. o.host .. ":" .. o.port .. (o.db ~= 0 and ("/" .. o.db) or ""),   -- (no password)
    keys = { rate = base .. "rate", open = base .. "open", trial = base .. "trial", offset = base .. "offset",
             members = base .. "members", fails = base .. "fails", budget = base .. "budget" },
    member = fallback.member or _M.member_id(),
    trial_timeout = (client.config.timeout or 10) + (client.config.connect_timeout or 3),
  }, Store)
  local login = self.where .. " " .. core.sha1((o.user or "") .. "\0" .. (o.password or "")):sub(1, 12)
  self.health = HEALTH[login] or {}   -- (a wrong password is that login's trouble alone)
  HEALTH[login] = self.health
  self.seen = SEEN[self.where .. " " .. base] or {}
  SEEN[self.where .. " " .. base] = self.seen
  if in_nginx then
    local redis = resty_redis()
    if not redis then
      return nil, "store needs lua-resty-redis inside nginx (Debian: lua-nginx-redis; resty.redis or "
        .. "nginx.redis)"
    end
    local pool = "itnio-store:" .. login   -- (a pool per login)
    self.conn = setmetatable({ o = o, redis = redis, pool = pool }, Cosocket)
  else
    self.rd = core.redis_new{ host = o.host, port = o.port, db = o.db, user = o.user, password = o.password,
                              timeout = o.timeout, connect_timeout = o.connect_timeout }
    self.conn = setmetatable({ rd = self.rd }, Blocking)
  end
  return self
end

_M.Store = Store
_M.SHA = SHA

return _M
