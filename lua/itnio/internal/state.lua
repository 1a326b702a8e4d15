--- Private to lua-itnio. What a client learns and keeps between calls: the clock offset, the
-- rate limit's slots, the circuit breaker, the batch's retry budget. Kept in the client (one
-- process, one worker), or, with `itnio.new{ shared_dict = "name" }` inside nginx, in a
-- `lua_shared_dict` that every worker of the machine shares, keyed by a hash of the
-- account's key (never the key itself). Nothing here holds a lock, and nothing yields.
--
-- In the dict, each operation is atomic, and these need no more: a rate slot is claimed
-- with `add` (one worker gets each), the half-open trial with `add`, the budget and the
-- count of failures move with `incr`. Recording the breaker's end of a run is a few
-- operations, not one: two workers that record at once may both open it, or one may open it
-- while the other closes it; the later write wins, and either outcome is one a single worker
-- could have reached (at worst one cooldown more, or one trial less).
--
--     local st = state.new(client, opts)      -- opts: rate, burst, breaker, shared_dict
--     st:offset() / st:set_offset(n)          seconds to add to the local clock
--     st:reserve(now[, share])                seconds until the slot booked (share: a rate of
--                                             its own, a store's share of the rate)
--     st:breaker_check(now)                   nil (go), or seconds until the breaker lets a trial go
--     st:breaker_record(failed, now)          after an attempt: failed worth retrying, or not
--     st:budget(capacity, earn)               the batch's retry budget: take() / earn()
local core    = require "itnio.core"
local compat  = require "itnio.internal.compat"
local limiter = require "itnio.internal.limiter"
local options = require "itnio.internal.options"
local store   = require "itnio.internal.store"

local type, tostring, setmetatable, max, min = type, tostring, setmetatable, math.max, math.min
local floor = math.floor
local format = string.format

local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = {}

--- Why the breaker option is not one, or nil.
-- @tparam any b `{ failures = n, cooldown = seconds }`
-- @treturn string|nil what is wrong
local BREAKER_OPTS = options.set{ "failures", "cooldown" }

function _M.check_breaker(b)
  if type(b) ~= "table" then return "breaker must be a table { failures = n, cooldown = seconds }" end
  local why = options.unknown(b, BREAKER_OPTS)
  if why then return "breaker: " .. why end
  if not options.is_number(b.failures, 1, 1e6, true) then
    return "breaker.failures must be a whole number from 1 to 1000000"
  end
  local c = b.cooldown
  if type(c) ~= "number" or not (c > 0 and c <= 86400) then
    return "breaker.cooldown must be seconds, more than 0 and at most 86400"
  end
  return nil
end

-- ---------------------------------------------------------------------------------------
-- The two steps every state takes, whatever keeps it (the store, itnio.internal.store, has
-- the same two, as one round trip each):
--
--   st:before(c, now) -> "go" | "wait", s (its slot is booked) | "open", s (the breaker)
--   st:after(c, facts, now) -> took: facts.evidence ("ok", "fail", or "local": a failure of
--     this machine's own) for the breaker, facts.budget ("earn", "take") for c.budget,
--     facts.date (the server's clock, for the offset); took: whether a "take" got a token

local function before(self, c, t)
  local cfg = c.client.config
  if cfg.breaker then
    local left = self:breaker_check(t)
    if left then return "open", left end
  end
  if cfg.rate then
    local wait = self:reserve(t)
    if wait > 0 then return "wait", wait end
  end
  return "go", 0
end

local function after(self, c, facts, t)
  if not facts then return true end
  local took = true
  if facts.evidence and c.client.config.breaker then self:breaker_record(facts.evidence ~= "ok", t) end
  local budget = c.budget
  if budget then
    if facts.budget == "earn" then budget:earn() elseif facts.budget == "take" then took = budget:take() end
  end
  if facts.date then self:set_offset(facts.date - floor(compat.wall())) end
  return took
end

-- ---------------------------------------------------------------------------------------
-- In the client (one process)

local Local = {}
Local.__index = Local

Local.before, Local.after = before, after

function Local:offset() return self.off end
function Local:set_offset(v) self.off = v end
function Local:reserve(t, share)
  if not share then return self.lim:reserve(t) end
  if share ~= self.share_rate then   -- (a store's share of the rate: a limiter of its own)
    self.share_rate, self.share = share, limiter.new(share, self.burst)
  end
  return self.share:reserve(t)
end

function Local:breaker_check(t)
  local until_t = self.open_until
  if not until_t then return nil end
  if t < until_t then return until_t - t end
  local trial = self.trial   -- one trial at a time (a trial that never told its end expires)
  if trial and t - trial < self.trial_timeout then return self.trial_timeout - (t - trial) end
  self.trial = t
  return nil
end

function Local:breaker_record(failed, t)
  local b = self.breaker
  if not failed then
    self.fails, self.open_until, self.trial = 0, nil, nil
    return
  end
  if self.trial then   -- the trial failed: open again
    self.trial, self.fails, self.open_until = nil, 0, t + b.cooldown
    return
  end
  self.fails = self.fails + 1
  if self.fails >= b.failures then self.fails, self.open_until = 0, t + b.cooldown end
end

local Budget = {}
Budget.__index = Budget
function Budget:take()
  if self.tokens >= 1 then self.tokens = self.tokens - 1 return true end
  return false
end
function Budget:earn()
  local t = self.tokens
  if t < self.capacity then self.tokens = min(self.capacity, t + self.earns) end
end

function Local.budget(_, capacity, earn)
  return setmetatable({ tokens = capacity, capacity = capacity, earns = earn or 0.1 }, Budget)
end

-- ---------------------------------------------------------------------------------------
-- In a lua_shared_dict (every worker of the machine)

local Shared = {}
Shared.__index = Shared
Shared.before, Shared.after = before, after

function Shared:offset() return self.dict:get(self.prefix .. "offset") or self.off end
function Shared:set_offset(v)
  self.off = v   -- (kept here too: a full dict must not make this worker forget it)
  local ok, err = self.dict:set(self.prefix .. "offset", v)
  if not ok then self:full(err) end
end

-- The dict refused a write: said once per client; this worker goes on with its own state.
function Shared:full(err)
  if self.warned then return end
  self.warned = true
  if self.warn then
    self.warn("itnio: the lua_shared_dict " .. self.name .. " refused a write (" .. tostring(err)
      .. "): this worker goes on with state of its own; give the dict more memory")
  end
end

-- The rate limit as slots of 1/rate seconds, one attempt each, claimed with `add` (atomic;
-- the first worker to add a slot's key has it). A slot in the last `burst` slots that nobody
-- took is free to take at once, which gives the bucket's burst after a quiet spell.
function Shared:reserve(t, share)
  local rate, dict, key = self.rate, self.dict, self.prefix .. "slot:"
  if share then   -- (the machine's share of a store's rate: slots of their own)
    rate, key = share, self.prefix .. format("slot/%.17g:", share)
  end
  local ttl = max(2, (self.burst + 1) / rate + 1)
  local s = floor(t * rate) - (self.burst - 1)
  local walked = 0
  while true do
    local ok, err = dict:add(key .. format("%.0f", s), true, ttl)
    if ok then return max(0, s / rate - t) end
    if err ~= "exists" then   -- the dict is full: pace this worker alone rather than not at all
      self:full(err)
      return self.fallback:reserve(t)
    end
    s = s + 1
    walked = walked + 1
    if walked > 100000 then return self.fallback:reserve(t) end
  end
end

function Shared:breaker_check(t)
  local dict, p = self.dict, self.prefix
  local until_t = dict:get(p .. "open_until")
  if not until_t then return nil end
  if t < until_t then return until_t - t end
  -- half-open: the first worker to add the trial key sends the trial; it expires, so a
  -- trial whose worker died does not hold the breaker open forever
  local ok = dict:add(p .. "trial", true, self.trial_timeout)
  if ok then return nil end
  return self.trial_timeout
end

function Shared:breaker_record(failed, t)
  local dict, p, b = self.dict, self.prefix, self.breaker
  if not failed then
    dict:set(p .. "fails", 0)
    dict:delete(p .. "open_until")
    dict:delete(p .. "trial")
    return
  end
  if dict:get(p .. "trial") then   -- the trial failed: open again
    dict:delete(p .. "trial")
    dict:set(p .. "fails", 0)
    dict:set(p .. "open_until", t + b.cooldown)
    return
  end
  local n = dict:incr(p .. "fails", 1, 0)
  if n and n >= b.failures then
    dict:set(p .. "fails", 0)
    dict:set(p .. "open_until", t + b.cooldown)
  end
end

local SharedBudget = {}
SharedBudget.__index = SharedBudget
function SharedBudget:take()
  local n = self.dict:incr(self.key, -1, self.capacity)
  if n and n >= 0 then return true end
  if n then self.dict:incr(self.key, 1) end   -- (give back what was not there)
  return false
end
function SharedBudget:earn()
  local n = self.dict:incr(self.key, self.earns, self.capacity)
  if n and n > self.capacity then self.dict:incr(self.key, self.capacity - n) end
end

function Shared:budget(capacity, earn)
  return setmetatable({ dict = self.dict, key = self.prefix .. "budget", capacity = capacity,
                        earns = earn or 0.1 }, SharedBudget)
end

-- ---------------------------------------------------------------------------------------

-- The client's own state, or the machine's dict's: nil, why when the dict cannot be used.
local function own(client, opts, trial_timeout, lim)
  local name = opts.shared_dict
  if name == nil then
    return setmetatable({ off = 0, lim = lim, breaker = opts.breaker, fails = 0, burst = opts.burst,
                          trial_timeout = trial_timeout }, Local)
  end
  local dict = ngx and ngx.shared and ngx.shared[name]
  if not dict then
    return nil, "shared_dict: no lua_shared_dict named " .. tostring(name)
      .. " (declare it in nginx.conf's http block: lua_shared_dict " .. tostring(name) .. " 1m;)"
  end
  -- The account, hashed: the dict's keys never show the key itself.
  local prefix = "itnio:" .. core.sign(client.api_key, "itnio.state", "0"):sub(1, 16) .. ":"
  local ok, err = dict:add(prefix .. "probe", true, 1)
  if not ok and err ~= "exists" then
    return nil, "shared_dict " .. name .. " cannot hold the client's state (" .. tostring(err) .. ")"
  end
  -- The machine's name for the store's count of clients (its workers share one share)
  dict:add(prefix .. "member", store.member_id())
  return setmetatable({ dict = dict, name = name, prefix = prefix, rate = opts.rate, burst = opts.burst or 1,
                        fallback = lim, breaker = opts.breaker, trial_timeout = trial_timeout, off = 0,
                        member = dict:get(prefix .. "member"),
                        warn = function(msg) client:_log("warn", msg, nil, true) end }, Shared)
end

--- The state of a new client: nil, why when the shared dict cannot be used. With a store,
-- the store's, on the client's own state (or the dict's) as its fallback.
-- @tparam table client the client (its api_key and timeout are read)
-- @tparam table opts itnio.new's options (rate, burst, breaker, shared_dict, store: parsed)
-- @treturn table the state
function _M.new(client, opts)
  local trial_timeout = (client.config.timeout or 10) + (client.config.connect_timeout or 3)
  local lim = opts.rate and limiter.new(opts.rate, opts.burst) or nil
  local st, why = own(client, opts, trial_timeout, lim)
  if not st or not opts.store then return st, why end
  return store.new(client, opts.store, st, ngx ~= nil and ngx.socket ~= nil)
end

return _M
