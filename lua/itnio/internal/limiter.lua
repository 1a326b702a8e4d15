--- Private to lua-itnio. A rate limit: at most `rate` attempts a second, `burst` of them at
-- once after a quiet
-- spell. It is a token bucket of `burst` tokens that earns `rate` tokens a second, kept in
-- the form that needs one number of state (the "generic cell rate algorithm"): `tat`, the
-- time at which the bucket would be full again if nothing more were taken.
--
--     local lim = limiter.new(10, 1)       -- 10 a second, evenly
--     local wait = lim:reserve(now())      -- seconds to wait before this attempt may go
--
-- `reserve` takes a token now or books the next one to come: the caller waits the seconds it
-- returns and then sends, without asking again. A booked slot is spent even when the caller
-- gives up meanwhile (a deadline, a cancel): the limit errs on the side of sending less.
--
-- The state lives in a store, an object with two methods: `store:get()` -> the number or nil,
-- and `store:set(n)`. The default keeps it in a table of its own; limiters of one process that
-- share a store (and a clock) share one limit. A get and a set are two steps, so a store
-- that other processes write at the same time (a `lua_shared_dict` across nginx workers)
-- would lose bookings: `itnio.internal.state` paces those by claiming slots with the dict's `add`.
local type, tostring, setmetatable, floor, huge = type, tostring, setmetatable, math.floor, math.huge
local format = string.format

local _M = {}

local Limiter = {}
Limiter.__index = Limiter

-- The default store: the number, in a table.
local Own = {}
Own.__index = Own
local function own_get(self) return self.tat end
local function own_set(self, v) self.tat = v end
Own.get, Own.set = own_get, own_set

--- Why rate and burst are not a limit, or nil when they are one.
-- @tparam any rate attempts a second: a finite number greater than 0
-- @tparam any burst attempts at once: a whole number of at least 1 (nil: 1)
-- @treturn string|nil what is wrong
function _M.check(rate, burst)
  if type(rate) ~= "number" or rate ~= rate or rate <= 0 or rate == huge then
    return "rate must be a number greater than 0 (attempts a second), got " .. tostring(rate)
  end
  if burst ~= nil and (type(burst) ~= "number" or burst ~= floor(burst) or burst < 1 or burst == huge) then
    return "burst must be a whole number of at least 1, got " .. tostring(burst)
  end
  return nil
end

--- A new limiter (rate and burst as `check` takes them; it raises on what `check` refuses).
-- @tparam number rate attempts a second
-- @tparam[opt=1] number burst attempts at once
-- @tparam[opt] table store where the one number of state lives (see above)
-- @treturn table the limiter
function _M.new(rate, burst, store)
  local why = _M.check(rate, burst)
  if why then error(why, 2) end
  burst = burst or 1
  local interval = 1 / rate
  return setmetatable({ rate = rate, burst = burst, interval = interval,
                        tau = (burst - 1) * interval, store = store or setmetatable({}, Own) }, Limiter)
end

--- Takes a token for an attempt at time now, or books the next one: the seconds to wait
-- before the attempt (0: go now).
-- @tparam number now the time, in seconds, on the clock every caller of this limiter reads
-- @treturn number seconds to wait
function Limiter:reserve(now)
  local store = self.store
  local tat = store:get()
  if not tat or tat < now then tat = now end
  local at = tat - self.tau
  if at < now then at = now end
  store:set(tat + self.interval)
  return at - now
end

function Limiter:__tostring()
  return format("itnio.Limiter(%g a second, burst %d)", self.rate, self.burst)
end

return _M
