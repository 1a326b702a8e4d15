-- A private sandbox for busted specs: starts bin/itnio-sandbox in its own prefix on free ports
-- and controls it over its /sandbox/ endpoints with LuaSocket's socket.http (independent of the
-- client under test).
--
--   local sandbox = require "support.sandbox"
--   local sb = sandbox.start{ skew = 0, hold_ms = 0, allow_ip = nil, window = nil, http2 = false,
--                             keepalive_timeout = nil, key = nil, secret = nil }
--   sb.http_url, sb.https_url, sb.cafile, sb.api_key, sb.api_secret, sb.prefix, sb.port, sb.tls_port
--   sb:reset()  sb:fault{ kind = "code", code = -18, count = 1 }  sb:faults()  sb:stats()
--   sb:client{ max_retries = 0 }   -- an itnio client on this sandbox, quick backoff
--   sandbox.task("text", { keyId = 300 })   -- a valid task (one TTS node saying text)
--   sb:task(299)  sb:set_task(302, "Pending")  sb:error_log()  sb:status()  sb:stop()
--
-- Prefixes are build/test-sandbox-<pid>-<n>; sb:stop() removes its prefix (set
-- ITNIO_KEEP_SANDBOX=1 to keep it). Runs under Lua 5.1 (LuaJIT) .. 5.4.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local S = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
S.shell_quote = shell_quote

-- Children never inherit a sanitizer runtime preloaded into the spec process (make asan).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
S.clean_env = CLEAN_ENV

-- Runs a shell command; returns its output (stdout and stderr) and whether it exited 0.
-- The status travels in the output: LuaJIT's pipe:close() does not report it. keep_env: the
-- child keeps a preloaded sanitizer runtime (a Lua that loads the same instrumented core).
local function run(cmd, keep_env)
  local p = assert(io.popen((keep_env and "" or CLEAN_ENV) .. "sh -c " .. shell_quote(cmd)
    .. " 2>&1; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return body or out, rc == "0"
end
S.run = run

-- The repository root, from this file's own location.
local function find_root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or "spec/support/sandbox.lua"
  local dir = src:match("^(.*)/[^/]*$") or "."
  local out = run("cd " .. shell_quote(dir .. "/../..") .. " && pwd -P")
  return (out:gsub("%s+$", ""))
end
S.root = find_root()
S.launcher = S.root .. "/bin/itnio-sandbox"

local function my_pid()
  local f = io.open("/proc/self/stat", "r")
  local pid = f and f:read("*l"):match("^(%d+)")
  if f then f:close() end
  if pid then return pid end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  return tostring(math.random(100000, 999999))
end
local PID = my_pid()
local counter = 0

-- Two distinct free ports: bound to port 0 together, then released.
local function free_ports()
  local a = assert(socket.bind("127.0.0.1", 0))
  local b = assert(socket.bind("127.0.0.1", 0))
  local _, pa = a:getsockname()
  local _, pb = b:getsockname()
  a:close()
  b:close()
  return tonumber(pa), tonumber(pb)
end
S.free_ports = free_ports

local function ensure_core()
  local f = io.open(S.root .. "/build/luajit/itnio/core.so", "rb")
  if f then f:close(); return end
  local out, ok = run("cd " .. shell_quote(S.root) .. " && make -s LUA=luajit build")
  if not ok then error("support.sandbox: cannot build the LuaJIT core:\n" .. out, 3) end
end

-- cjson.null -> nil, recursively.
local function denull(v)
  if v == cjson.null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denull(x) end
  end
  return v
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local Sandbox = {}
Sandbox.__index = Sandbox

-- One HTTP request to the sandbox (plain HTTP): returns status, body, headers (lowercase).
function Sandbox:request(method, path, body, headers)
  local out = {}
  local h = {}
  for k, v in pairs(headers or {}) do h[k] = v end
  if body then h["Content-Length"] = tostring(#body) end
  local ok, status, rh = http.request {
    url = self.http_url .. path, method = method, headers = h,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(out),
    create = function()
      local s = socket.tcp()
      s:settimeout(30)
      return s
    end,
  }
  if not ok then return nil, status end
  return status, table.concat(out), rh
end

local function control(self, method, path, value)
  local body = value ~= nil and cjson.encode(value) or nil
  local status, text = self:request(method, path, body,
    body and { ["Content-Type"] = "application/json" } or nil)
  if not status then
    error("support.sandbox: " .. method .. " " .. path .. " failed: " .. tostring(text), 3)
  end
  return status, text
end

local function control_json(self, method, path, value)
  local status, text = control(self, method, path, value)
  if status ~= 200 then
    error(("support.sandbox: %s %s answered %s: %s"):format(method, path, status, text), 3)
  end
  return denull(cjson.decode(text))
end

function Sandbox:reset() return control_json(self, "POST", "/sandbox/reset") end
function Sandbox:stats() return control_json(self, "GET", "/sandbox/stats") end

-- An itnio client on this sandbox's plain-HTTP port, its backoff short; `over` sets options.
function Sandbox:client(over)
  local opts = { api_key = self.api_key, api_secret = self.api_secret, base_url = self.http_url,
                 backoff_base = 0.01, backoff_cap = 0.05 }
  for k, v in pairs(over or {}) do opts[k] = v end
  return assert(require("itnio").new(opts))
end

-- A valid task with one text-to-speech node saying `text`; `over` sets top-level fields.
function S.task(text, over)
  local t = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
    nodeList = { { source = 3, text = text, lan = "en-US", hangUpSms = 0, toSeat = 0 } } }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end
function Sandbox:faults() return control_json(self, "GET", "/sandbox/faults") end
function Sandbox:clear_faults() return control_json(self, "DELETE", "/sandbox/faults") end

-- Queues a fault (or a list of them) for the next update requests.
function Sandbox:fault(f) return control_json(self, "POST", "/sandbox/faults", f) end

-- The stored task {keyId, status, updates, updated_at, task} or nil when there is none.
function Sandbox:task(key_id)
  local status, text = control(self, "GET", "/sandbox/tasks/" .. tostring(key_id))
  if status == 404 then return nil end
  if status ~= 200 then error("support.sandbox: task " .. key_id .. ": " .. text, 2) end
  return denull(cjson.decode(text))
end

-- Creates a task or sets its status.
function Sandbox:set_task(key_id, status)
  return control_json(self, "POST", "/sandbox/tasks/" .. tostring(key_id), { status = status })
end

function Sandbox:error_log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

function Sandbox:launch(cmd, ...)
  local args = { shell_quote(S.launcher), cmd, "--prefix", shell_quote(self.prefix) }
  for i = 1, select("#", ...) do args[#args + 1] = shell_quote((select(i, ...))) end
  return run(table.concat(args, " "))
end

-- "running" or "stopped", from bin/itnio-sandbox status.
function Sandbox:status()
  local out = self:launch("status")
  return (out:gsub("%s+$", ""))
end

function Sandbox:stop()
  if self.stopped then return end
  local out, ok = self:launch("stop")
  if not ok then error("support.sandbox: stop failed: " .. out, 2) end
  self.stopped = true
  if os.getenv("ITNIO_KEEP_SANDBOX") ~= "1" then
    run("rm -rf -- " .. shell_quote(self.prefix))
  end
end

-- Starts a private sandbox; see the top of this file for the options.
function S.start(opts)
  opts = opts or {}
  ensure_core()
  local last
  for _ = 1, 3 do -- a port taken between free_ports() and nginx's bind: try others
    counter = counter + 1
    local prefix = ("%s/build/test-sandbox-%s-%d"):format(S.root, PID, counter)
    local port, tls_port = free_ports()
    local args = { "start", "--prefix", prefix, "--port", port, "--tls-port", tls_port }
    local function opt(name, v)
      if type(v) == "number" then v = ("%.0f"):format(v) end
      if v ~= nil then args[#args + 1] = name; args[#args + 1] = v end
    end
    opt("--skew", opts.skew)
    opt("--window", opts.window)
    opt("--hold-ms", opts.hold_ms)
    if opts.http2 then opt("--http2", 1) end
    opt("--keepalive-timeout", opts.keepalive_timeout)
    opt("--key", opts.key)
    opt("--secret", opts.secret)
    local allow = opts.allow_ip
    if type(allow) == "table" then allow = table.concat(allow, ",") end
    opt("--allow-ip", allow)
    for i, a in ipairs(args) do args[i] = shell_quote(a) end
    local out, ok = run(shell_quote(S.launcher) .. " " .. table.concat(args, " "))
    if ok then
      local sb = setmetatable({ port = port, tls_port = tls_port,
        api_secret = opts.secret or "sandbox-secret" }, Sandbox)
      for k, v in out:gmatch("([%w_]+)=([^\n]*)") do sb[k] = v end
      if not (sb.http_url and sb.https_url and sb.cafile and sb.api_key and sb.prefix) then
        run(shell_quote(S.launcher) .. " stop --prefix " .. shell_quote(prefix))
        error("support.sandbox: unexpected output of itnio-sandbox start:\n" .. out, 2)
      end
      return sb
    end
    local log = read_file(prefix .. "/logs/error.log") or ""
    last = out .. (out:find("error.log", 1, true) and "" or ("\nerror.log:\n" .. log:sub(-2000)))
    if not (last:find("Address already in use", 1, true)) then break end
  end
  error("support.sandbox: nginx did not start:\n" .. last, 2)
end

return S
