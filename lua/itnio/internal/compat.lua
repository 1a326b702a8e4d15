--- Private to lua-itnio. What differs between Lua 5.4, LuaJIT/5.1 and an nginx worker, in
-- one place: clocks, sleeping, and whether nginx cosockets can be used in the running phase.
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

return _M
