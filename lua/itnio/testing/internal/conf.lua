--- Private to lua-itnio's test kit. The nginx configuration of the sandbox, and of any nginx
-- server a test runs, from one template. The launcher (itnio.testing.sandbox) writes the sandbox's;
-- the specs' own servers (spec/support/nginx.lua) write theirs with the same function.
--
--   conf.render{ prefix = dir, lua_path = {dirs}, lua_cpath = {dirs}, http = "...",
--                server = "...", main = "...", workers = 1, log_level = "warn", writer = "who" }
--   conf.sandbox{ prefix, port, tls_port, http2, keepalive, lua_path, lua_cpath, endpoints }
--   conf.modules(dir)   the load_module lines of the Lua module, where it is a module
--
-- Portable Lua (5.1 .. 5.4): it runs in whichever Lua runs the launcher.
local type, ipairs, tostring = type, ipairs, tostring
local concat = table.concat
local io_open = io.open

local _M = {}

local TEMPLATE = [[
# Written by @WRITER@; edits are lost.
@MODULES@
@USER@
daemon on;
master_process on;
worker_processes @WORKERS@;
error_log @PREFIX@/logs/error.log @LOG_LEVEL@;
pid @PREFIX@/logs/nginx.pid;
@MAIN@
events { worker_connections 1024; }

http {
    access_log off;
    lua_package_path "@LUA_PATH@;;";
    lua_package_cpath "@LUA_CPATH@;;";
@HTTP@
    server {
@SERVER@
    }
}
]]

-- Where Debian and the usual builds keep nginx's dynamic modules.
_M.MODULE_DIRS = { "/usr/lib/nginx/modules", "/usr/lib64/nginx/modules", "/usr/local/nginx/modules",
                   "/usr/share/nginx/modules", "/etc/nginx/modules" }

local function exists(path)
  local f = io_open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- The load_module lines for the Lua module (and the NDK it needs) found in dir, or in the
-- usual directories; "" when none is there (an nginx with the module built in, as
-- OpenResty's). Returns the lines and the directory they came from.
-- @tparam[opt] string dir a directory of nginx modules to look in first
function _M.modules(dir)
  local dirs = { dir }
  for _, d in ipairs(_M.MODULE_DIRS) do dirs[#dirs + 1] = d end
  for _, d in ipairs(dirs) do
    if exists(d .. "/ngx_http_lua_module.so") then
      local lines = {}
      if exists(d .. "/ndk_http_module.so") then lines[1] = "load_module " .. d .. "/ndk_http_module.so;" end
      lines[#lines + 1] = "load_module " .. d .. "/ngx_http_lua_module.so;"
      return concat(lines, "\n"), d
    end
  end
  return "", nil
end

-- A path nginx's config can take as it is (no quote, ';', '$', braces, white space).
local function check_path(p)
  if type(p) ~= "string" or p:find("[\"'\\;%${}%s]") then
    error("itnio.testing.internal.conf: the path '" .. tostring(p)
      .. "' holds a character the nginx config cannot take", 0)
  end
  return p
end

local function search_path(dirs, patterns)
  local parts = {}
  for _, d in ipairs(dirs or {}) do
    check_path(d)
    for _, pat in ipairs(patterns) do parts[#parts + 1] = d .. "/" .. pat end
  end
  return concat(parts, ";")
end

--- A whole nginx.conf. o: prefix (absolute), lua_path and lua_cpath (directories), http and
-- server (the blocks' insides), main (main-context lines), workers (1), log_level ("warn"),
-- modules (load_module lines; found when nil), writer (who wrote it), user (the user line;
-- as root, workers run as root so that they may read a checkout).
-- @tparam table o what to fill in
function _M.render(o)
  local fill = {
    WRITER = o.writer or "itnio.testing.internal.conf",
    MODULES = o.modules or _M.modules(),
    USER = o.user or "",
    WORKERS = tostring(o.workers or 1),
    PREFIX = check_path(o.prefix),
    LOG_LEVEL = o.log_level or "warn",
    MAIN = o.main or "",
    LUA_PATH = search_path(o.lua_path, { "?.lua", "?/init.lua" }),
    LUA_CPATH = search_path(o.lua_cpath, { "?.so" }),
    HTTP = o.http or "",
    SERVER = o.server or "",
  }
  return (TEMPLATE:gsub("@([%u_]+)@", function(name) return fill[name] end))
end

--- The sandbox's nginx.conf. o: prefix, port, tls_port, http2, keepalive (seconds), workers,
-- lua_path, lua_cpath, modules, user, and endpoints (core.endpoints(): one route each).
-- @tparam table o what to fill in
function _M.sandbox(o)
  local p = check_path(o.prefix)
  local http = {
    "    server_tokens off;",
    "    default_type application/octet-stream;",
    "    client_body_temp_path " .. p .. "/tmp/body;",
    "    proxy_temp_path " .. p .. "/tmp/proxy;",
    "    fastcgi_temp_path " .. p .. "/tmp/fastcgi;",
    "    uwsgi_temp_path " .. p .. "/tmp/uwsgi;",
    "    scgi_temp_path " .. p .. "/tmp/scgi;",
    "    client_max_body_size 128m;",
    "    client_body_buffer_size 32m;",
    "    keepalive_timeout " .. (o.keepalive or 30) .. "s;",
    "    keepalive_requests 1000000;",
    "    lua_shared_dict itnio_tasks 128m;",
    "    lua_shared_dict itnio_faults 32m;",
    "    lua_shared_dict itnio_stats 8m;",
    "    init_by_lua_block { require(\"itnio.testing.internal.handler\")"
      .. ".init(ngx.config.prefix() .. \"conf/sandbox.conf\") }",
    "    header_filter_by_lua_block { require(\"itnio.testing.internal.handler\").header_filter() }",
  }
  local server = {
    "        listen 127.0.0.1:" .. o.port .. ";",
    "        listen 127.0.0.1:" .. o.tls_port .. " ssl" .. (o.http2 and " http2" or "") .. ";",
    "        server_name localhost;",
    "        ssl_certificate " .. p .. "/tls/server.pem;",
    "        ssl_certificate_key " .. p .. "/tls/server.key;",
    "        ssl_protocols TLSv1.2 TLSv1.3;",
  }
  for _, e in ipairs(o.endpoints) do   -- one route per endpoint of the core
    server[#server + 1] = "        location = " .. check_path(e.path) .. " {"
    server[#server + 1] = "            content_by_lua_block { require(\"itnio.testing.internal.handler\")"
      .. ".serve(\"" .. e.name .. "\") }"
    server[#server + 1] = "        }"
  end
  server[#server + 1] = "        location /sandbox/ {"
  server[#server + 1] = "            content_by_lua_block { require(\"itnio.testing.internal.handler\")"
    .. ".control() }"
  server[#server + 1] = "        }"
  server[#server + 1] = "        location / {"
  server[#server + 1] = "            content_by_lua_block { require(\"itnio.testing.internal.handler\")"
    .. ".not_found() }"
  server[#server + 1] = "        }"
  return _M.render{
    writer = "itnio-sandbox", prefix = p, workers = o.workers, modules = o.modules, user = o.user,
    lua_path = o.lua_path, lua_cpath = o.lua_cpath, http = concat(http, "\n"),
    server = concat(server, "\n"),
  }
end

return _M
