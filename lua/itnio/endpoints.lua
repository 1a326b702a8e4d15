--- The vendor endpoints, one list for the whole Lua layer: the core's table (name, method,
-- path, schema; csrc/schema.c) with the names everything else is made from. For an endpoint
-- named E (`recall_update`):
--
--   client:E(body [, opts])            the call, blocking (inside nginx: yielding)
--   client:start_E(body [, opts])      a job (client:poll drives it)
--   client:prepare_E(body [, opts])    the request it would send, Sign redacted (a dry run)
--   client:batch_E(bodies [, opts])    many at once
--   itnio E-with-dashes FILE|-         the command line's command (`recall-update`)
--   the sandbox's route                POST path, validated by the core
--
-- A second endpoint is one schema and one row in the core; nothing here changes.
-- Private to the Lua layer.
local core = require "itnio.core"

local _M = {}

-- Names a first version of the client used, kept for the programs written against it.
local OLDER_NAMES = {
  recall_update = { call = "update_recall_task", batch = "update_recall_tasks" },
}

local list, by_name, by_path = {}, {}, {}
for i, e in ipairs(core.endpoints()) do
  local name = e.name
  e.methods = { call = name, start = "start_" .. name, prepare = "prepare_" .. name,
                batch = "batch_" .. name }
  e.older = OLDER_NAMES[name] or {}
  e.command = name:gsub("_", "-")
  -- what the encoder is called with (one closure per endpoint, made once)
  e.encode = function(body, opts) return core.encode(name, body, opts) end
  list[i], by_name[name], by_path[e.path] = e, e, e
end

--- Every endpoint, in the core's order.
_M.list = list

--- The endpoint named name ("recall_update"), or nil.
-- @tparam string name the endpoint's name
function _M.named(name)
  return by_name[name]
end

--- The endpoint whose path is path ("/voice/recallFlow/update"), or nil.
-- @tparam string path the request's path
function _M.at(path)
  return by_path[path]
end

--- The endpoint of a command line command ("recall-update"), or nil.
-- @tparam string command the command
function _M.command(command)
  return by_name[(command:gsub("%-", "_"))]
end

return _M
