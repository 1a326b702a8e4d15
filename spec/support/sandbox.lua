-- A private sandbox for busted specs: starts one with itnio.testing.sandbox (what
-- bin/itnio-sandbox runs) in its own prefix on free ports, and controls it over its /sandbox/
-- endpoints with LuaSocket's socket.http (independent of the client under test). The sandbox
-- plays the endpoints of the core the spec runs with (make test-endpoint's has a second one;
-- ITNIO_SANDBOX_CPATH names nginx's LuaJIT build of it).
--
--   local sandbox = require "support.sandbox"
--   local sb = sandbox.start{ skew = 0, hold_ms = 0, allow_ip = nil, window = nil, http2 = false,
--                             keepalive_timeout = nil, key = nil, secret = nil }
--   sb.http_url, sb.https_url, sb.cafile, sb.api_key, sb.api_secret, sb.prefix, sb.port, sb.tls_port
--   sb:reset()  sb:fault{ kind = "code", code = -18, count = 1 }  sb:faults()  sb:stats()  sb:arrivals()
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
local launcher = require "itnio.testing.sandbox"

local S = {}

-- The shell toolkit lives in support.shell; a sandbox's specs reach it through here too.
local shell = require "support.shell"
local shell_quote, run, free_ports = shell.quote, shell.run, shell.free_ports
S.shell_quote, S.run, S.free_ports, S.root = shell.quote, shell.run, shell.free_ports, shell.root
S.launcher = S.root .. "/bin/itnio-sandbox"
-- The core nginx's LuaJIT loads: the checkout's LuaJIT build (make LUA=luajit), or another
-- (make test-endpoint's) named by ITNIO_SANDBOX_CPATH.
S.luajit_core = os.getenv("ITNIO_SANDBOX_CPATH") or (S.root .. "/build/luajit")

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


-- cjson.null -> nil, recursively.
local function denull(v)
  if v == cjson.null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denull(x) end
  end
  return v
end

local read_file = shell.read

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
function Sandbox:arrivals() return control_json(self, "GET", "/sandbox/arrivals").arrivals end

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

-- Makes (or sets) the tasks from..to at once, with status (Pending unless given).
function Sandbox:seed(from, to, status)
  return control_json(self, "POST", "/sandbox/tasks", { from = from, to = to, status = status or "Pending" })
end

-- How many updates the tasks from..to had: { tasks, updates = { ["0"] = n, ... }, never, more }.
function Sandbox:updates(from, to)
  return control_json(self, "GET", ("/sandbox/tasks?from=%d&to=%d"):format(from, to))
end

function Sandbox:error_log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

-- Runs bin/itnio-sandbox on this sandbox's prefix (the command line itself, for its specs).
function Sandbox:launch(cmd, ...)
  local args = { shell_quote(S.launcher), cmd, "--prefix", shell_quote(self.prefix) }
  for i = 1, select("#", ...) do args[#args + 1] = shell_quote((select(i, ...))) end
  return run(table.concat(args, " "))
end

-- "running" or "stopped".
function Sandbox:status()
  return launcher.status(self.prefix)
end

function Sandbox:stop()
  if self.stopped then return end
  launcher.stop(self.prefix, true)   -- at once: a spec is done with what is in flight
  self.stopped = true
  if os.getenv("ITNIO_KEEP_SANDBOX") ~= "1" then
    run("rm -rf -- " .. shell_quote(self.prefix))
  end
end

-- Starts a private sandbox; see the top of this file for the options.
function S.start(opts)
  opts = opts or {}
  local last
  for _ = 1, 3 do -- a port taken between free_ports() and nginx's bind: try others
    counter = counter + 1
    local prefix = ("%s/build/test-sandbox-%s-%d"):format(S.root, PID, counter)
    local port, tls_port = free_ports()
    local allow = opts.allow_ip
    if type(allow) == "table" then allow = table.concat(allow, ",") end
    local info, err = launcher.start{ prefix = prefix, port = port, tls_port = tls_port,
      skew = opts.skew, window = opts.window, hold_ms = opts.hold_ms, http2 = opts.http2 and true or nil,
      keepalive = opts.keepalive_timeout, key = opts.key, secret = opts.secret, allow_ip = allow,
      workers = opts.workers, lua_cpath = S.luajit_core }
    if info then
      local sb = setmetatable({ port = port, tls_port = tls_port,
        api_secret = opts.secret or "sandbox-secret" }, Sandbox)
      for k, v in pairs(info) do sb[k] = v end
      return sb
    end
    last = err
    if not err:find("Address already in use", 1, true) then break end
  end
  error("support.sandbox: the sandbox did not start:\n" .. last, 2)
end

return S
