-- Run by core_encode_spec.lua in a Lua of its own (a small heap, where the collector's
-- cycles are short): finalizers that encode, run by the collector while an encode is under
-- way. Prints "seen nested wrong": finalizers run, of them inside an encode, wrong bodies.
local core = require "itnio.core"
local F = require "support.fixtures"

local small = F.task_nodes(F.voice(1, F.SMS))
local small_body = assert(core.encode("recall_update", small))
local seen, nested, wrong = 0, 0, 0
local function finalizer()
  seen = seen + 1
  if debug.traceback():find("in function '[%w%.]*encode'") then nested = nested + 1 end
  if core.encode("recall_update", small) ~= small_body then wrong = wrong + 1 end
end
local function garbage()   -- an object with a finalizer (5.1 and LuaJIT: a userdata)
  if newproxy then getmetatable(newproxy(true)).__gc = finalizer   -- luacheck: ignore
  else setmetatable({}, { __gc = finalizer }) end
end

-- Encodes that allocate while they write: a refused task (its error messages) and a task
-- whose every node has a passthrough key (a table for the extras of each node, made while
-- the body is half written). The collector, told to run at every step, calls finalizers
-- inside them; a finalizer's encode must neither spoil the body under way nor take its own.
local nodes, extra_nodes = {}, {}
for i = 1, 60 do
  nodes[i] = i
  extra_nodes[i] = F.voice(1, F.SMS, { ["x-extra"] = i })
end
local bad = F.task({ keyId = "x", recallNum = "y", recallType = "z", nodeList = nodes })
local PASS = { passthrough = true }
local extra = F.task_nodes((unpack or table.unpack)(extra_nodes))
local extra_body = assert(core.encode("recall_update", extra, PASS))
collectgarbage("collect")
collectgarbage("setpause", 0)
collectgarbage("setstepmul", 1000)
for _ = 1, 200 do
  for _ = 1, 20 do garbage() end
  if core.encode("recall_update", bad) then wrong = wrong + 1 end
  for _ = 1, 20 do garbage() end
  if core.encode("recall_update", extra, PASS) ~= extra_body then wrong = wrong + 1 end
  if core.encode("recall_update", small) ~= small_body then wrong = wrong + 1 end
end
collectgarbage("collect")
print(seen, nested, wrong)
