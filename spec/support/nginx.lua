-- A private nginx with the Lua module and this checkout's module, for specs that run code
-- inside nginx workers (the ngx transport, the OpenResty example).
--
--   local nginx = require "support.nginx"
--   local srv = nginx.start{ http = "...", server = "...", main = "...", workers = 1,
--                            reuseport = true (each connection to one worker, the kernel's pick),
--                            env = { NAME = "value" },
--                            conf = "<a whole nginx.conf, instead of http/server>" }
--   srv.url, srv.port, srv.prefix; srv:get(path) -> status, body, headers; srv:stop()
--   nginx.query{ k = v, ... } -> "k=v&..." (percent-encoded), for srv:get's path
--
-- Its config comes from itnio.testing.internal.conf, the sandbox's own writer. Prefixes are
-- build/test-nginx-<pid>-<n>; stop() removes its prefix unless ITNIO_KEEP_SANDBOX=1. A whole
-- `conf` may say $PORT, $PREFIX, $REPO and $MODULES.
local socket  = require "socket"
local http    = require "socket.http"
local ltn12   = require "ltn12"
local sandbox = require "support.sandbox"
local conf    = require "itnio.testing.internal.conf"

local N = {}
local counter = 0
local q, run, ROOT = sandbox.shell_quote, sandbox.run, sandbox.root

-- A query string from a table: each value percent-encoded (all but unreserved characters).
function N.query(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-_.~]", function(c)
      return string.format("%%%02X", c:byte())
    end)
  end
  return table.concat(parts, "&")
end

local function pid()
  local f = io.open("/proc/self/stat", "r")
  local p = f and f:read("*l"):match("^(%d+)")
  if f then f:close() end
  return p or tostring(os.time())
end

-- The directory of nginx's LuaJIT build of the core (make test-endpoint names its own).
local function core_dir()
  local dir = os.getenv("ITNIO_SANDBOX_CPATH")
  if dir and dir ~= "" then return dir end
  local out, ok = run("cd " .. q(ROOT) .. " && make -s LUA=luajit build")
  if not ok then error("support.nginx: cannot build the LuaJIT core:\n" .. out, 3) end
  return ROOT .. "/build/luajit"
end

-- The specs' servers take the sandbox's config writer.
local function default_conf(opts, prefix, port)
  return conf.render{
    writer = "spec/support/nginx.lua", prefix = prefix, log_level = "info",
    user = run("id -u"):match("^0%s*$") and "user root root;" or "", workers = opts.workers,
    lua_path = { ROOT .. "/lua", ROOT .. "/spec" }, lua_cpath = { core_dir() }, main = opts.main,
    http = opts.http, server = "    listen 127.0.0.1:" .. port .. (opts.reuseport and " reuseport" or "")
      .. ";\n" .. (opts.server or ""),
  }
end

local Server = {}
Server.__index = Server

function N.start(opts)
  opts = opts or {}
  counter = counter + 1
  local prefix = ROOT .. "/build/test-nginx-" .. pid() .. "-" .. counter
  local port = sandbox.free_ports()
  run("rm -rf " .. q(prefix) .. " && mkdir -p " .. q(prefix .. "/conf") .. " " .. q(prefix .. "/logs"))
  local text = (opts.conf or default_conf(opts, prefix, port))
    :gsub("%$MODULES", function() return (conf.modules()) end)
    :gsub("%$PORT", tostring(port)):gsub("%$PREFIX", prefix):gsub("%$REPO", ROOT)
  local f = assert(io.open(prefix .. "/conf/nginx.conf", "wb"))
  f:write(text)
  f:close()
  local env = { "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT" }
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. q(v) end
  local out, ok = run("cd " .. q(ROOT) .. " && " .. table.concat(env, " ")
    .. " nginx -p " .. q(prefix .. "/") .. " -c conf/nginx.conf -e " .. q(prefix .. "/logs/error.log"))
  local self = setmetatable({ prefix = prefix, port = port, url = "http://127.0.0.1:" .. port }, Server)
  if not ok then error("nginx did not start: " .. out .. "\n" .. self:error_log(), 2) end
  for _ = 1, 100 do
    local c = socket.connect("127.0.0.1", port)
    if c then c:close(); return self end
    socket.sleep(0.05)
  end
  self:stop()
  error("nginx started but does not answer on port " .. port, 2)
end

function Server:get(path, method, body, headers)
  local chunks = {}
  local hdrs = headers or {}
  if body then hdrs["Content-Length"] = tostring(#body) end
  local ok, status, h = http.request{
    url = self.url .. path, method = method or "GET", headers = hdrs,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(chunks),
  }
  if not ok then return nil, status end
  return status, table.concat(chunks), h
end

function Server:error_log()
  local f = io.open(self.prefix .. "/logs/error.log", "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

function Server:stop()
  local pidfile = self.prefix .. "/logs/nginx.pid"
  local f = io.open(pidfile, "rb")
  local p = f and f:read("*l")
  if f then f:close() end
  if p and p:match("^%d+$") then
    run("kill -QUIT " .. p .. "; for i in $(seq 1 100); do kill -0 " .. p
      .. " 2>/dev/null || break; grep -q '^State:.*Z' /proc/" .. p
      .. "/status 2>/dev/null && break; sleep 0.05; done; kill -KILL "
      .. p .. " 2>/dev/null; true")
  end
  if os.getenv("ITNIO_KEEP_SANDBOX") ~= "1" then run("rm -rf " .. q(self.prefix)) end
end

return N
