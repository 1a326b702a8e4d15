-- luacheck: the Lua layer runs on Lua 5.1/LuaJIT (inside nginx) and on 5.4.
std = "max"
globals = { "ngx" }   -- handlers set ngx.status and ngx.header
max_line_length = 110
files["spec"] = { std = "+busted" }
files["examples/**/*_spec.lua"] = { std = "+busted" }   -- a user's own specs, as they would write them
exclude_files = { "build" }
files["bench/wrk_post.lua"] = { globals = { "wrk", "request", "response", "done", "setup", "init" } }
