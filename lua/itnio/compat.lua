--- What differs between Lua 5.4, LuaJIT/5.1 and an nginx worker, in one place: clocks,
-- sleeping, and whether nginx cosockets can be used in the running phase.
local core = require "itnio.core"

local ngx = ngx   -- luacheck: ignore (a global inside nginx only)

local _M = {}

--- A whole float as an integer where the Lua has integers (5.3+); as it is elsewhere.
_M.tointeger = math.tointeger or function(v) return v end   -- luacheck: ignore

--- Is this an nginx worker where cosockets and ngx.sleep work now? (false, phase) if not.
local yieldable = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
function _M.ngx_phase()
  if not (ngx and ngx.get_phase) then return nil end
  local phase = ngx.get_phase()
  return yieldable[phase] == true, phase
end

--- Seconds for durations and deadlines: a monotonic clock outside nginx; inside it ngx.now()
-- (nginx's cached wall clock, refreshed here), the clock its timers and ngx.sleep keep.
function _M.now()
  if ngx and ngx.update_time and _M.ngx_phase() then
    ngx.update_time()
    return ngx.now()
  end
  return core.now()
end

--- Unix time in seconds with a fraction (the Timestamp header).
function _M.wall()
  return core.time()
end

--- Sleeps without blocking an nginx worker where it can; blocks the thread elsewhere.
function _M.sleep(seconds)
  if seconds <= 0 then return end
  if ngx and ngx.sleep and _M.ngx_phase() then return ngx.sleep(seconds) end
  return core.sleep(seconds)
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds since the epoch of an HTTP date (RFC 9110 IMF-fixdate), or nil.
function _M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, H, M, S = s:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon]
  if not m then return nil end
  d, y, H, M, S = tonumber(d), tonumber(y), tonumber(H), tonumber(M), tonumber(S)
  if d < 1 or d > 31 or H > 23 or M > 59 or S > 60 then return nil end
  -- days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + H * 3600 + M * 60 + S
end

return _M
