--- Private to lua-itnio. HTTP dates as the client reads them: the answer's Date (the
-- clock-skew fix) and Retry-After (a number of seconds, or a date).
local type, tonumber = type, tonumber
local floor, max = math.floor, math.max

local _M = {}

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds since the epoch of an HTTP date (RFC 9110 IMF-fixdate), or nil.
function _M.parse(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, H, M, S = s:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon]
  if not m then return nil end
  d, y, H, M, S = tonumber(d), tonumber(y), tonumber(H), tonumber(M), tonumber(S)
  if d < 1 or d > 31 or H > 23 or M > 59 or S > 60 then return nil end
  -- days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + H * 3600 + M * 60 + S
end

--- Seconds to wait from a Retry-After value: delta-seconds, or an HTTP date measured against
-- the answer's Date (else against `now`, Unix seconds). nil when it is neither.
function _M.retry_after(value, date, now)
  if type(value) ~= "string" then return nil end
  local n = tonumber(value:match("^%s*(%d+)%s*$"))
  if n then return n end
  local at = _M.parse(value)
  if not at then return nil end
  return max(0, at - (_M.parse(date) or now))
end

return _M
