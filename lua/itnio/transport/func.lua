--- A transport function of the caller's own, wrapped into a transport: t:send(req) calls it
-- with a fresh request table { method, url, headers, body, timeout, connect_timeout } and
-- returns its answer { status, headers, body, reused } (or true and a message: a plain
-- success, as the curl transport gives it to a function that wraps it) or its failure
-- { reason, message, sent }. Whatever the function does, send never raises: a raise, or an answer that is not
-- of that shape, is a failure (sent: it may have reached the server). The function may
-- yield, when the caller polls jobs inside a coroutine. Only the blocking way to wait: jobs
-- call it from poll.
local errors = require "itnio.errors"

local type, pcall, pairs, setmetatable = type, pcall, pairs, setmetatable

local _M = {}

local Func = {}
Func.__index = Func
Func.name = "custom"

--- _M.new(fn) -> the transport around fn(request).
-- @tparam function fn the caller's transport function
function _M.new(fn)
  return setmetatable({ fn = fn }, Func)
end

--- Calls the function with a fresh request, and checks what it returns.
-- @tparam table req the request (its headers are copied: the function may keep or change them)
function Func:send(req)
  local headers = {}
  for k, v in pairs(req.headers) do headers[k] = v end
  local called, r1, r2 = pcall(self.fn, { method = req.method, url = req.url, headers = headers,
    body = req.body, timeout = req.timeout, connect_timeout = req.connect_timeout })
  if not called then
    return nil, { reason = "other", message = "the transport raised: " .. errors.text(r1), sent = true }
  end
  if r1 == true and (r2 == nil or type(r2) == "string") then
    return true, r2   -- a plain success, as the curl transport gives it (a function may wrap it)
  end
  if r1 ~= nil then
    if type(r1) ~= "table" or type(r1.status) ~= "number" or type(r1.body) ~= "string" then
      return nil, { reason = "protocol", message = "the transport returned no {status, body}", sent = true }
    end
    if type(r1.headers) ~= "table" then r1.headers = {} end
    return r1
  end
  if type(r2) ~= "table" then
    return nil, { reason = "other", message = "the transport failed: " .. errors.text(r2), sent = true }
  end
  -- (a first version of this interface called the reason `kind`)
  if r2.reason == nil then r2.reason = type(r2.kind) == "string" and r2.kind or "other" end
  return nil, r2
end

--- Nothing to free.
function Func.close() end

return _M
