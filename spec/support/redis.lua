-- A private redis-server for specs: its own free port on 127.0.0.1, a password, no
-- persistence (--save ""), its own directory under build/; stopped by its pid, never a system
-- service. Runs under Lua 5.1 (LuaJIT) .. 5.4.
--
--   local redis = require "support.redis"
--   local r = redis.start{ password = "..." }   -- r.port, r.password, r.url (redis://:pw@127.0.0.1:port)
--   r:cli("GET", "k")   r:keys()   r:stop()   r:kill()   r:pause()   r:resume()   r:restart()
--   r:set_password(pw, drop)
local shell = require "support.shell"

local q, run = shell.quote, shell.run

local R = {}
R.__index = R

local counter = 0

local function pid_of(dir)
  local text = shell.read(dir .. "/redis.pid")
  return text and text:match("%d+")
end

-- Starts redis-server on self's port and directory; waits until it answers.
local function launch(self)
  local out, ok = run("redis-server --port " .. self.port .. " --bind 127.0.0.1 --requirepass "
    .. q(self.password) .. " --save '' --appendonly no --daemonize yes --dir " .. q(self.dir)
    .. " --pidfile " .. q(self.dir .. "/redis.pid") .. " --logfile " .. q(self.dir .. "/redis.log"))
  assert(ok, out)
  for _ = 1, 100 do
    local pong = run("redis-cli -p " .. self.port .. " --no-auth-warning -a " .. q(self.password) .. " PING")
    if pong:find("PONG", 1, true) and pid_of(self.dir) then
      self.pid = pid_of(self.dir)
      return self
    end
    run("sleep 0.05")
  end
  error("support.redis: redis-server did not answer on port " .. self.port .. ":\n"
    .. (shell.read(self.dir .. "/redis.log") or ""))
end

function R.start(opts)
  opts = opts or {}
  counter = counter + 1
  local port = shell.free_ports()
  local self = setmetatable({ port = port, password = opts.password or ("spec-pw-" .. port),
    dir = ("%s/build/test-redis-%d-%d"):format(shell.root, port, counter) }, R)
  assert(run("mkdir -p " .. q(self.dir)))
  self.url = "redis://:" .. self.password .. "@127.0.0.1:" .. port
  return launch(self)
end

-- redis-cli's output of one command.
function R:cli(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = q(tostring((select(i, ...)))) end
  local out = run("redis-cli -p " .. self.port .. " --no-auth-warning -a " .. q(self.password) .. " "
    .. table.concat(args, " "))
  return (out:gsub("%s+$", ""))
end

-- Every key, with its TTL in ms: { [key] = pttl }.
function R:keys()
  local t = {}
  for k in self:cli("KEYS", "*"):gmatch("[^\n]+") do t[k] = tonumber(self:cli("PTTL", k)) end
  return t
end

-- Changes its password and, with drop, drops every client connected: those still holding the
-- old one are refused from their next connection on. (r.url keeps the password it started
-- with.)
function R:set_password(pw, drop)
  self:cli("CONFIG", "SET", "requirepass", pw)
  self.password = pw
  if drop then self:cli("CLIENT", "KILL", "TYPE", "normal") end
end

function R:pause() run("kill -STOP " .. self.pid) end
function R:resume() run("kill -CONT " .. self.pid) end

-- Kills it (SIGKILL), leaving its port free; restart() starts it again on the same port.
-- Whether its process is there (a zombie not yet reaped is gone).
local function alive(pid)
  return run("kill -0 " .. pid .. " 2>/dev/null && ! grep -q '^State:.*Z' /proc/" .. pid
    .. "/status 2>/dev/null && echo alive"):find("alive") ~= nil
end

function R:kill()
  run("kill -KILL " .. self.pid)
  for _ = 1, 100 do
    if not alive(self.pid) then break end
    run("sleep 0.02")
  end
  os.remove(self.dir .. "/redis.pid")
end

function R:restart()
  return launch(self)
end

function R:stop()
  if self.stopped then return end
  self.stopped = true
  run("kill -CONT " .. self.pid .. " 2>/dev/null; kill -TERM " .. self.pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not alive(self.pid) then break end
    run("sleep 0.02")
  end
  run("rm -rf -- " .. q(self.dir))
end

return R
