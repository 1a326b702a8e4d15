--- The sandbox, from Lua: starts, stops and checks an nginx that plays the vendor, on
-- 127.0.0.1, over HTTP and HTTPS (a throw-away CA made with the openssl command), in a
-- private prefix. bin/itnio-sandbox is its command line; tests call it as a library.
--
--     local sandbox = require "itnio.testing.sandbox"
--     local info, err = sandbox.start{ port = 18080, tls_port = 18443,
--                                      prefix = "dir", ... }
--       -- info: http_url, https_url, cafile, api_key, prefix
--     sandbox.stop(prefix [, fast])   sandbox.status(prefix) -> "running" | "stopped"
--
-- What it needs, it finds: nginx on PATH (or $NGINX), the Lua module where Debian and the
-- usual builds keep it (or $NGINX_MODULES_DIR; or built in, as in OpenResty), the test kit
-- on package.path, and a core nginx's LuaJIT can load: start's `lua_cpath`, else
-- $ITNIO_SANDBOX_CPATH, the Lua that runs it when that is LuaJIT or 5.1, or the Lua 5.1
-- tree beside the installed modules (install the client's rock for Lua 5.1 too). Each
-- missing piece is a sentence that says what to do. Portable Lua (5.1 .. 5.4).
-- @module itnio.testing.sandbox
local conf = require "itnio.testing.internal.conf"

local type, tostring, ipairs, pairs, pcall = type, tostring, ipairs, pairs, pcall
local concat = table.concat
local io_open, os_getenv, os_remove = io.open, os.getenv, os.remove
local format = string.format

local _M = {}

_M.DEFAULTS = {
  port = 18080, tls_port = 18443, window = 300, skew = 0, allow_ip = "127.0.0.1,::1",
  hold_ms = 0, keepalive = 30, key = "sandbox-key", secret = "sandbox-secret", http2 = false,
  workers = 1,
}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command: its output and whether it exited 0 (the status travels in the
-- output: LuaJIT's and 5.1's pipe:close() do not report it).
local function sh(cmd)
  local p = io.popen("sh -c " .. q("(" .. cmd .. ") 2>&1") .. "; echo \"__rc=$?\"", "r")
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return body or out, rc == "0"
end

local function exists(path)
  local f = io_open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function read_file(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, text, private)
  if private then sh("umask 077 && : > " .. q(path)) end
  local f, err = io_open(path, "wb")
  if not f then return nil, err end
  f:write(text)
  f:close()
  return true
end

-- The path, absolute and canonical (no `.`, `..` or link in the part that exists): start,
-- stop and status must name one prefix alike, however they were given it (bin/../build/x,
-- a link, another working directory), as nginx's command line is matched against it.
local function absolute(path)
  path = path:gsub("/+$", "")
  if path == "" then return "/" end
  local head, tail = path, ""
  while true do   -- the longest part that exists, resolved by the shell; the rest as given
    local real = sh("cd " .. q(head == "" and "/" or head) .. " 2>/dev/null && pwd -P"):gsub("%s+$", "")
    if real ~= "" then return (real == "/" and "" or real) .. tail end
    local dir, base = head:match("^(.*)/([^/]+)$")
    if not dir then   -- a relative first part that does not exist: from the working directory
      return sh("pwd -P"):gsub("%s+$", "") .. "/" .. head .. tail
    end
    head, tail = dir, "/" .. base .. tail
  end
end

local function sleep(s)
  local ok, core = pcall(require, "itnio.core")
  if ok then core.sleep(s) else sh("sleep " .. s) end
end

-- ---------------------------------------------------------------------------------------
-- Finding what nginx needs.

local searchpath = package.searchpath or function(name, path)
  local file = name:gsub("%.", "/")
  for pat in path:gmatch("[^;]+") do
    local candidate = pat:gsub("%?", file)
    if exists(candidate) then return candidate end
  end
  return nil
end

-- The directory the test kit is in (above itnio/), from package.path.
local function lua_dir()
  local file = searchpath("itnio.testing.sandbox", package.path)
  if not file then return nil end
  return (file:gsub("/itnio/testing/sandbox%.lua$", ""))
end

-- The directory above itnio/core.so of a core nginx's LuaJIT can load, or nil, why.
local function luajit_core(dir)
  local from_env = os_getenv("ITNIO_SANDBOX_CPATH")
  if from_env and from_env ~= "" then
    if exists(from_env .. "/itnio/core.so") then return from_env end
    return nil, "ITNIO_SANDBOX_CPATH is " .. from_env .. ", which holds no itnio/core.so"
  end
  if jit or _VERSION == "Lua 5.1" then
    local file = searchpath("itnio.core", package.cpath)
    if file then return (file:gsub("/itnio/core%.so$", "")) end
  end
  -- an installed tree: share/lua/5.x beside lib/lua/5.1
  local tree = dir:match("^(.*)/share/lua/5%.%d$")
  if tree and exists(tree .. "/lib/lua/5.1/itnio/core.so") then return tree .. "/lib/lua/5.1" end
  return nil, "the sandbox runs in nginx's LuaJIT and needs itnio.core built for LuaJIT or Lua 5.1, "
    .. "and none was found: install the rock for Lua 5.1 too (luarocks --lua-version 5.1 ...), "
    .. "or set ITNIO_SANDBOX_CPATH to the directory above itnio/core.so"
end

--- The nginx to run, or nil, why.
function _M.nginx()
  local n = os_getenv("NGINX")
  if n and n ~= "" then
    if exists(n) then return n end
    return nil, "NGINX is " .. n .. ", which does not exist"
  end
  local out, ok = sh("command -v nginx")
  if ok and out:match("%S") then return (out:gsub("%s+$", "")) end
  for _, p in ipairs{ "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx",
                      "/usr/local/openresty/nginx/sbin/nginx" } do
    if exists(p) then return p end
  end
  return nil, "nginx not found: install nginx with its Lua module (Debian: nginx "
    .. "libnginx-mod-http-lua; or OpenResty), or set NGINX to its path"
end

-- The load_module lines, or "" when the module is built in; or nil, why.
local function lua_module(nginx)
  local lines = conf.modules(os_getenv("NGINX_MODULES_DIR"))
  if lines ~= "" then return lines end
  local out = sh(q(nginx) .. " -V")
  if out:find("lua", 1, true) then return "" end
  return nil, "nginx's Lua module not found: install it (Debian: libnginx-mod-http-lua), or set "
    .. "NGINX_MODULES_DIR to the directory that holds ngx_http_lua_module.so"
end

-- ---------------------------------------------------------------------------------------
-- Process control.

-- True while process pid exists and is not a zombie (an exited nginx stays a zombie until
-- pid 1 reaps it, which some container inits do only every second or two).
local function alive(pid)
  local _, ok = sh("kill -0 " .. pid)
  if not ok then return false end
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat and stat:match("^%d+ %b() ([ZX])") then return false end
  return true
end

-- Whether process pid is an nginx master started on prefix (its command line says
-- `-p prefix/`); with no /proc to ask, unknown (nil).
local function started_on(pid, prefix)
  local cmd = read_file("/proc/" .. pid .. "/cmdline")
  if not cmd then return nil end
  return cmd:find("-p " .. prefix .. "/", 1, true) ~= nil
end

-- The pid of this prefix's running nginx master, or nil: the pid file's, or, when the file
-- is gone or names another process, a master whose command line names the prefix.
local function running_pid(prefix)
  local text = read_file(prefix .. "/logs/nginx.pid")
  local pid = text and text:match("^%s*(%d+)%s*$")
  if pid and alive(pid) and started_on(pid, prefix) ~= false then return pid end
  for p in (sh("pgrep -f 'nginx: master process'")):gmatch("%d+") do
    if alive(p) and started_on(p, prefix) then return p end
  end
  return nil
end

local function wait_gone(pid, tries)
  for _ = 1, tries do
    if not alive(pid) then return true end
    sleep(0.05)
  end
  return not alive(pid)
end

--- The prefix start, stop and status take when given none: $TMPDIR/itnio-sandbox (or /tmp's).
-- @treturn string the directory
function _M.default_prefix()
  return (os_getenv("TMPDIR") or "/tmp") .. "/itnio-sandbox"
end

--- Stops the nginx of prefix (nothing to do when none runs): true, or nil and why when it
-- could not be stopped (its pid file is then left).
-- Gracefully by default: nginx ends the requests in flight first, which takes as long as
-- a held answer or a delay fault (up to 5 s, then it is told to stop at once). A test that
-- is done with its sandbox passes fast, and nginx drops what is in flight.
-- @tparam string prefix the sandbox's directory
-- @tparam[opt] boolean fast stop at once (nginx's fast shutdown), not gracefully
function _M.stop(prefix, fast)
  prefix = absolute(prefix)
  local pid = running_pid(prefix)
  if not pid then
    os_remove(prefix .. "/logs/nginx.pid")   -- (a stale one: its process is gone)
    return true
  end
  local kids = sh("pgrep -P " .. pid)   -- its workers (their names omit the prefix)
  sh((fast and "kill -TERM " or "kill -QUIT ") .. pid)
  if not wait_gone(pid, fast and 40 or 100) then
    sh("kill -TERM " .. pid)
    if not wait_gone(pid, 40) then sh("kill -KILL " .. pid) end
  end
  for kid in kids:gmatch("%d+") do   -- the workers leave with their master; none stays behind
    if not wait_gone(kid, 40) and (read_file("/proc/" .. kid .. "/cmdline") or ""):find("^nginx: ") then
      sh("kill -KILL " .. kid)
    end
  end
  if alive(pid) then   -- its pid file stays: something can still stop it
    return nil, "the sandbox's nginx (pid " .. pid .. ") is still running"
  end
  os_remove(prefix .. "/logs/nginx.pid")
  return true
end

--- "running" or "stopped".
-- @tparam string prefix the sandbox's directory
function _M.status(prefix)
  return running_pid(absolute(prefix)) and "running" or "stopped"
end

-- ---------------------------------------------------------------------------------------
-- Starting.

local OPENSSL_CNF = [[
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
]]

-- A throw-away CA (its key deleted once it signed) and a server certificate, in prefix/tls.
local function make_tls(prefix)
  local d = prefix .. "/tls"
  local out, ok = sh("rm -rf " .. q(d) .. " && umask 077 && mkdir -p " .. q(d))
  if not ok then return nil, out end
  write_file(d .. "/openssl.cnf", OPENSSL_CNF)
  local serial = sh("openssl rand -hex 8"):match("%x+")
  if not serial then return nil, "the openssl command is missing (Debian: openssl)" end
  out, ok = sh("umask 077 && cd " .. q(d) .. " && "
    .. "openssl req -config openssl.cnf -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
    .. "-nodes -keyout ca.key -out ca.pem -days 2 -extensions v3_ca -set_serial 0x" .. serial
    .. " -subj '/O=lua-itnio sandbox/CN=lua-itnio sandbox CA " .. serial .. "' && "
    .. "openssl req -config openssl.cnf -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
    .. "-nodes -keyout server.key -out server.csr -subj '/O=lua-itnio sandbox/CN=localhost' && "
    .. "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1" .. serial
    .. " -days 2 -extfile openssl.cnf -extensions v3_server -out server.pem")
  if not ok then return nil, "openssl failed:\n" .. out end
  -- The CA signs nothing more: its key goes now, so nobody can mint certificates it vouches for.
  sh("cd " .. q(d) .. " && rm -f ca.key server.csr && chmod 644 ca.pem server.pem && chmod 600 server.key"
    .. " && chmod 755 .")
  return d .. "/ca.pem"
end

-- Does the control endpoint answer, over HTTP and over HTTPS with the CA?
local function answers(o, cafile)
  local ok, core = pcall(require, "itnio.core")
  if ok then
    local plain = core.http_new{}
    local tls = core.http_new{ cafile = cafile }
    local a1 = plain:perform("GET", "http://127.0.0.1:" .. o.port .. "/sandbox/stats", {}, nil, 2, 1)
    local a2 = a1 and a1.status == 200
      and tls:perform("GET", "https://localhost:" .. o.tls_port .. "/sandbox/stats", {}, nil, 2, 1)
    plain:close()
    tls:close()
    return a2 and a2.status == 200
  end
  local _, good = sh("curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:" .. o.port .. "/sandbox/stats && "
    .. "curl -fsS -o /dev/null --max-time 2 --cacert " .. q(cafile) .. " https://localhost:" .. o.tls_port
    .. "/sandbox/stats")
  return good
end

local function is_uint(v)
  return type(v) == "number" and v >= 0 and v == math.floor(v) and v < 1e10
end

-- The options, checked: o, or nil, why.
local function options(opts)
  local o = {}
  for k, v in pairs(_M.DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  for _, name in ipairs{ "port", "tls_port" } do
    if not (is_uint(o[name]) and o[name] >= 1 and o[name] <= 65535) then
      return nil, name .. " must be a port number, got " .. tostring(o[name])
    end
  end
  if o.port == o.tls_port then return nil, "port and tls_port must differ" end
  for _, name in ipairs{ "window", "hold_ms", "keepalive" } do
    if not is_uint(o[name]) then return nil, name .. " must be a whole number, got " .. tostring(o[name]) end
  end
  if not (type(o.skew) == "number" and o.skew == math.floor(o.skew)) then
    return nil, "skew must be a whole number of seconds (may be negative), got " .. tostring(o.skew)
  end
  if not (is_uint(o.workers) and o.workers >= 1 and o.workers <= 64) then
    return nil, "workers must be from 1 to 64, got " .. tostring(o.workers)
  end
  if type(o.allow_ip) ~= "string" or o.allow_ip:find("[^%x.:,%s*]") then
    return nil, "allow_ip must be a comma-separated list of addresses, got " .. tostring(o.allow_ip)
  end
  for _, name in ipairs{ "key", "secret" } do
    if type(o[name]) ~= "string" or o[name] == "" or o[name]:find("[\r\n]") then
      return nil, name .. " must be one non-empty line"
    end
  end
  o.prefix = o.prefix or _M.default_prefix()
  return o
end

--- Starts the sandbox (restarting the one of the same prefix): { http_url, https_url,
-- cafile, api_key, prefix }, or nil, why. opts: port (18080), tls_port (18443), prefix,
-- window (300 s), skew (0 s), allow_ip ("127.0.0.1,::1"), hold_ms (0), keepalive (30 s),
-- key, secret, http2 (false), workers (1), lua_cpath (the directory above the itnio/core.so
-- nginx's LuaJIT loads; found when not given).
-- @tparam[opt] table opts as above
function _M.start(opts)
  local o, why = options(opts)
  if not o then return nil, why end
  local out, ok = sh("mkdir -p " .. q(o.prefix) .. "/logs " .. q(o.prefix) .. "/conf "
    .. q(o.prefix) .. "/tmp")
  if not ok then return nil, "cannot create the prefix " .. o.prefix .. ": " .. out end
  local prefix = absolute(o.prefix):gsub("/+$", "")
  prefix = sh("cd " .. q(prefix) .. " && pwd -P"):gsub("%s+$", "")
  _M.stop(prefix)

  local nginx, e1 = _M.nginx()
  if not nginx then return nil, e1 end
  local modules, e2 = lua_module(nginx)
  if not modules then return nil, e2 end
  local dir = lua_dir()
  if not dir then return nil, "cannot find the module itnio.testing.sandbox on package.path" end
  local core_dir, e3 = o.lua_cpath, nil
  if core_dir and not exists(core_dir .. "/itnio/core.so") then
    return nil, "lua_cpath is " .. core_dir .. ", which holds no itnio/core.so"
  end
  if not core_dir then core_dir, e3 = luajit_core(dir) end
  if not core_dir then return nil, e3 end
  local endpoints = require("itnio.core").endpoints()

  write_file(prefix .. "/logs/error.log", "")
  local cafile, e4 = make_tls(prefix)
  if not cafile then return nil, "cannot make the throw-away CA: " .. e4 end
  write_file(prefix .. "/conf/sandbox.conf", format("key=%s\nsecret=%s\nwindow=%d\nskew=%d\n"
    .. "allow_ip=%s\nhold_ms=%d\n",
    o.key, o.secret, o.window, o.skew, o.allow_ip, o.hold_ms), true)
  -- Started as root, nginx hands its workers to nobody, who may not read a checkout.
  local user = sh("id -u"):match("^0%s*$") and "user root root;" or ""
  local text = conf.sandbox{ prefix = prefix, port = o.port, tls_port = o.tls_port, http2 = o.http2,
    keepalive = o.keepalive, workers = o.workers, lua_path = { dir }, lua_cpath = { core_dir },
    modules = modules, user = user, endpoints = endpoints }
  write_file(prefix .. "/conf/nginx.conf", text)

  -- nginx's LuaJIT must not take a Lua 5.x path from the caller (";;" expands to it).
  out, ok = sh("env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "
    .. q(nginx) .. " -p " .. q(prefix .. "/") .. " -c conf/nginx.conf -e " .. q(prefix .. "/logs/error.log")
    .. " < /dev/null")
  local function failed(what)
    local log = read_file(prefix .. "/logs/error.log") or ""
    _M.stop(prefix)
    return nil, "nginx did not start (" .. what .. "); prefix " .. prefix .. "\n" .. out
      .. (log ~= "" and ("tail of its error.log:\n" .. log:sub(-2000)) or "")
  end
  if not ok then return failed("nginx exited with an error") end
  for i = 1, 100 do   -- up to about 5 s
    if answers(o, cafile) then break end
    if i == 100 then
      return failed("no answer on ports " .. o.port .. " and " .. o.tls_port .. " within 5 s")
    end
    if not running_pid(prefix) then
      sleep(0.1)
      if not running_pid(prefix) then return failed("nginx exited") end
    end
    sleep(0.05)
  end
  return { http_url = "http://127.0.0.1:" .. o.port, https_url = "https://localhost:" .. o.tls_port,
           cafile = cafile, api_key = o.key, prefix = prefix }
end

--- The lines `start` prints, key=value each, in a fixed order.
-- @tparam table info what start returned
function _M.describe(info)
  local lines = {}
  for _, k in ipairs{ "http_url", "https_url", "cafile", "api_key", "prefix" } do
    lines[#lines + 1] = k .. "=" .. info[k]
  end
  return concat(lines, "\n") .. "\n"
end

return _M
