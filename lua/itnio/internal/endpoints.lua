--- Private to lua-itnio. The vendor endpoints, one list for the client: the core's table
-- (`core.endpoints()`: name, method, path, title, noun; csrc/schema.c) with the names of the
-- methods each one gets. For an endpoint named E (`recall_update`):
--
--     client:E(body [, opts])            the call, blocking (inside nginx: yielding)
--     client:start_E(body [, opts])      a job (client:poll drives it)
--     client:prepare_E(body [, opts])    the request it would send, Sign redacted (a dry run)
--     client:batch_E(bodies [, opts])    many at once
--
-- A second endpoint is one schema and one row in the core; nothing here changes.
local core = require "itnio.core"

local _M = {}

local list, by_name = {}, {}
for i, e in ipairs(core.endpoints()) do
  local name = e.name
  e.methods = { call = name, start = "start_" .. name, prepare = "prepare_" .. name,
                batch = "batch_" .. name }
  list[i], by_name[name] = e, e
end

--- Every endpoint, in the core's order.
_M.list = list

--- The endpoint named name ("recall_update"), or nil.
-- @tparam string name the endpoint's name
function _M.named(name)
  return by_name[name]
end

return _M
