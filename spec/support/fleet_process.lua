-- A plain Lua process of a fleet spec: lua spec/support/fleet_process.lua CASE key=value...
-- (from the repository root, with the core on LUA_CPATH): runs support.fleet_cases' case
-- and prints its answer as JSON.
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
require("support.fleet_cases").main(arg)
