--- Private to lua-itnio. A transport function of the caller's own, wrapped into a transport:
-- `t:send(method, url, lines, body, timeout, ct)` calls it with a fresh request table
-- `{ method, url, headers, body, timeout, connect_timeout }` (headers: name -> value) and
-- returns its answer `{ status, headers, body, reused }` (or a plain success `{ plain = true,
-- message, head, reused }`, as the core's own handles give it, for a function that wraps
-- one) or its failure `nil, { reason, message, sent }`. Whatever the function does, send
-- never raises: a raise, or an answer of no such shape, is a failure (sent: it may have
-- reached the server). The function may yield, when the caller polls jobs inside a
-- coroutine. It has the blocking way to wait only: jobs call it from poll.
local errors = require "itnio.errors"

local type, pcall, setmetatable = type, pcall, setmetatable
local find, sub = string.find, string.sub

local _M = {}

local Custom = {}
Custom.__index = Custom
Custom.name = "custom"

--- The transport around fn(request).
-- @tparam function fn the caller's transport function
function _M.new(fn)
  return setmetatable({ fn = fn }, Custom)
end

local function fail(reason, message)
  return nil, { reason = reason, message = message, sent = true }
end

-- Is ans an answer of one of the two shapes?
local function is_answer(ans)
  if type(ans) ~= "table" then return false end
  if ans.plain == true then
    return (ans.message == nil or type(ans.message) == "string")
      and (ans.head == nil or type(ans.head) == "string")
  end
  return type(ans.status) == "number" and type(ans.body) == "string"
end

--- Calls the function with a fresh request, and checks what it returns.
function Custom:send(method, url, lines, body, timeout, ct)
  local headers = {}
  for i = 1, #lines do
    local line = lines[i]
    local colon = find(line, ": ", 1, true)
    headers[sub(line, 1, colon - 1)] = sub(line, colon + 2)
  end
  local called, ans, why = pcall(self.fn, { method = method, url = url, headers = headers, body = body,
                                            timeout = timeout, connect_timeout = ct })
  if not called then return fail("other", "the transport raised: " .. errors.text(ans)) end
  if ans ~= nil then
    if not is_answer(ans) then return fail("protocol", "the transport returned no {status, body}") end
    if not ans.plain and type(ans.headers) ~= "table" then ans.headers = {} end
    return ans
  end
  if type(why) ~= "table" then return fail("other", "the transport failed: " .. errors.text(why)) end
  if type(why.reason) ~= "string" then why.reason = "other" end
  return nil, why
end

--- Nothing to free.
function Custom.close() end

return _M
