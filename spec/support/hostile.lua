-- What a hostile caller does to jobs and the batch, for the regression and property specs:
-- transports of the caller's own that answer from a script (and may yield), error values
-- that cannot be printed, and a guard that turns a hang into a failure.
--
--   local hostile = require "support.hostile"
--   local t = hostile.transport{ "ok", "503", "timeout", "raise", { status = 429 } }
--   itnio.new{ ..., transport = t.fn }   t.calls: how many requests it was given
--   hostile.within(5, function() ... end)   raises "still running after 5 s" if fn hangs
--   hostile.unprintable()   a table whose __tostring raises; hostile.tabular(): returns a table
local core = require "itnio.core"

local H = {}

H.TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
           nodeList = { { source = 3, text = "hostile", lan = "en-US", hangUpSms = 0, toSeat = 0 } } }

local OK = '{"code":0,"msg":"success"}'

-- One answer of a script: a string names a common one; a table is an answer as it is; a
-- function is called with the request and returns what a transport returns.
local NAMED = {
  ok      = function() return { status = 200, headers = {}, body = OK } end,
  ["503"] = function() return { status = 503, headers = {}, body = "busy" } end,
  ["-18"] = function() return { status = 200, headers = {}, body = '{"code":-18,"msg":"system"}' } end,
  ["-22"] = function() return { status = 200, headers = {}, body = '{"code":-22,"msg":"bad"}' } end,
  timeout = function() return nil, { kind = "timeout", message = "timed out", sent = true } end,
  reset   = function() return nil, { kind = "reset", message = "reset", sent = true } end,
  raise   = function() error("the transport broke") end,
}

--- A transport function answering from `script`, then `after` (default "ok") for good.
function H.transport(script, after)
  local t = { calls = 0, requests = {} }
  local i = 0
  function t.fn(req)
    t.calls = t.calls + 1
    t.requests[#t.requests + 1] = req
    i = i + 1
    local a = script[i]
    if a == nil then a = after or "ok" end
    if type(a) == "string" then return NAMED[a](req) end
    if type(a) == "function" then return a(req) end
    return a
  end
  return t
end

--- A client on a transport function of ours, quick backoff; `over` sets options.
function H.client(fn, over)
  local opts = { api_key = "hostile-key", api_secret = "hostile-secret", base_url = "http://127.0.0.1:9",
                 transport = fn, backoff_base = 0.001, backoff_cap = 0.002 }
  for k, v in pairs(over or {}) do opts[k] = v end
  return assert(require("itnio").new(opts))
end

--- Runs fn, raising instead of hanging when it runs past `seconds` (a count hook: it fires
-- in a Lua loop that spins, which is how the hangs these specs guard against looked).
function H.within(seconds, fn, ...)
  local limit = core.now() + seconds
  local co = coroutine.running()
  local function hook()
    if core.now() > limit then
      debug.sethook(co, nil)   -- once
      error("still running after " .. seconds .. " s", 2)
    end
  end
  if co then debug.sethook(co, hook, "", 1000) else debug.sethook(hook, "", 1000) end
  local res = { pcall(fn, ...) }
  if co then debug.sethook(co, nil) else debug.sethook() end
  if not res[1] then error(res[2], 0) end
  return unpack and unpack(res, 2) or table.unpack(res, 2)
end

--- An error value whose __tostring raises.
function H.unprintable()
  return setmetatable({}, { __tostring = function() error("no text for you") end })
end

--- An error value whose __tostring returns a table (5.4 raises on it; 5.1 passes it on).
function H.tabular()
  return setmetatable({}, { __tostring = function() return {} end })
end

--- A shell prefix that leaves a child `spare` file descriptors beyond those it inherits (the
-- runner's own, which vary with how the suite was started).
function H.fd_limit(spare)
  return "ulimit -n $(( $(ls /proc/$$/fd | wc -l) + " .. spare .. " )) && "
end

--- The cpath entry ("dir/?.so") of the core this Lua loaded, for a child that must load the
-- same build (make test-poll runs the specs with the poll(2) one).
function H.core_cpath()
  for template in package.cpath:gmatch("[^;]+") do   -- (Lua 5.1 has no package.searchpath)
    local f = io.open((template:gsub("%?", "itnio/core")), "rb")
    if f then
      f:close()
      return template
    end
  end
  error("no itnio.core on package.cpath: " .. package.cpath)
end

--- Can a function called through pcall yield to the coroutine that called pcall? (Not in
-- plain Lua 5.1; in LuaJIT and 5.2+.)
function H.pcall_yields()
  local co = coroutine.create(function() return pcall(coroutine.yield, 1) end)
  local ok, v = coroutine.resume(co)
  return ok and v == 1 and coroutine.status(co) == "suspended"
end

return H
