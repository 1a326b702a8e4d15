-- An nginx (one worker) for bench/run's rows inside nginx, written with the sandbox's own
-- config writer (itnio.testing.internal.conf), next to the sandbox:
--   POST /recall-task   examples/openresty's handler: a task as JSON, updated through the client
--   POST /proxy         nginx's own proxy_pass of a prepared, signed request to the sandbox
--                       (the ceiling inside nginx: the same request, the same upstream)
--   POST /batch?n=N     a batch of N copies of bench/task.lua's task on ngx.thread light threads
--
--   lua5.4 bench/nginx.lua start PREFIX PORT SANDBOX_PORT KEY SECRET [STORE]   -> prints its URL
--   (STORE: the handler's client keeps its state in that store, its dict the fallback)
--   lua5.4 bench/nginx.lua stop PREFIX
local conf = require "itnio.testing.internal.conf"
local socket = require "socket"

local cmd, prefix = arg[1], arg[2]
assert(cmd == "start" or cmd == "stop", "usage: nginx.lua start|stop PREFIX ...")
local function sh(c) assert(os.execute(c), c) end
local function pid()
  local f = io.open(prefix .. "/logs/nginx.pid", "rb")
  local p = f and f:read("*l")
  if f then f:close() end
  return p
end

if cmd == "stop" then
  local p = pid()
  if p then os.execute("kill -QUIT " .. p .. " 2>/dev/null; sleep 0.3") end
  os.exit(0)
end

local port, sandbox_port, key, secret, store = tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6], arg[7]
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$")) or "."
root = io.popen("cd " .. root .. " && pwd -P"):read("*l")
sh("mkdir -p " .. prefix .. "/logs " .. prefix .. "/conf")
local text = conf.render{
  writer = "bench/nginx.lua", prefix = prefix, workers = 1,
  user = io.popen("id -u"):read("*l") == "0" and "user root root;" or "",
  lua_path = { root .. "/lua", root .. "/bench", root .. "/examples/openresty" },
  lua_cpath = { root .. "/build/luajit" },   -- (bench/run checks it is built)
  main = "env ITNIO_API_KEY;\nenv ITNIO_API_SECRET;\nenv ITNIO_BASE_URL;\nenv ITNIO_STORE;",
  http = table.concat({
    "    client_body_buffer_size 1m;",
    -- the handler's client keeps its state (clock, breaker, retry budget) and the counters
    -- of /metrics there, as in examples/openresty/nginx.conf
    "    lua_shared_dict itnio 1m;",
    "    lua_shared_dict itnio_metrics 1m;",
    "    upstream vendor { server 127.0.0.1:" .. sandbox_port .. "; keepalive 64; }",
  }, "\n"),
  server = table.concat({
    "        listen 127.0.0.1:" .. port .. ";",
    "        location = /recall-task { content_by_lua_block { require(\"handler\").update() } }",
    "        location = /proxy {",
    "            proxy_pass http://vendor/voice/recallFlow/update;",
    "            proxy_http_version 1.1;",
    "            proxy_set_header Connection \"\";",
    "        }",
    "        location = /batch { content_by_lua_block { require(\"nginx_batch\").run() } }",
  }, "\n"),
}
local f = assert(io.open(prefix .. "/conf/nginx.conf", "wb"))
f:write(text)
f:close()
sh("ITNIO_API_KEY=" .. key .. " ITNIO_API_SECRET=" .. secret
  .. " ITNIO_BASE_URL=http://127.0.0.1:" .. sandbox_port
  .. (store and (" ITNIO_STORE='" .. store .. "'") or "")
  .. " env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 nginx"
  .. " -p " .. prefix .. "/ -c conf/nginx.conf -e "
  .. prefix .. "/logs/error.log")
for _ = 1, 100 do
  local c = socket.connect("127.0.0.1", port)
  if c then
    c:close()
    print("http://127.0.0.1:" .. port)
    os.exit(0)
  end
  socket.sleep(0.05)
end
io.stderr:write("bench/nginx.lua: nginx does not answer on port ", port, "\n")
os.exit(1)
