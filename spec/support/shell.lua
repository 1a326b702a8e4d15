-- The specs' shell toolkit: quoting, running a command (its output and whether it exited
-- 0), the repository's root, free ports. Runs under Lua 5.1 (LuaJIT) .. 5.4.
--
--   local shell = require "support.shell"
--   local out, ok = shell.run("cmd " .. shell.quote(arg))   shell.root   shell.free_ports()
--   shell.read(path) -> its bytes, or nil when it cannot be opened    shell.write(path, text)
local socket = require "socket"

local S = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
S.quote = quote

-- Children never inherit a sanitizer runtime preloaded into the spec process (make asan).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
S.clean_env = CLEAN_ENV

-- Runs a shell command; returns its output (stdout and stderr) and whether it exited 0.
-- The status travels in the output: LuaJIT's pipe:close() does not report it. keep_env: the
-- child keeps a preloaded sanitizer runtime (a Lua that loads the same instrumented core).
function S.run(cmd, keep_env)
  local p = assert(io.popen((keep_env and "" or CLEAN_ENV) .. "sh -c " .. quote(cmd)
    .. " 2>&1; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return body or out, rc == "0"
end

-- A file's bytes, or nil when it cannot be opened.
function S.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- Writes text as the whole file (raises when it cannot).
function S.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The repository root, from this file's own location.
local function find_root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or "spec/support/shell.lua"
  local dir = src:match("^(.*)/[^/]*$") or "."
  local out = S.run("cd " .. quote(dir .. "/../..") .. " && pwd -P")
  return (out:gsub("%s+$", ""))
end
S.root = find_root()

-- Two distinct free ports: bound to port 0 together, then released.
function S.free_ports()
  local a = assert(socket.bind("127.0.0.1", 0))
  local b = assert(socket.bind("127.0.0.1", 0))
  local _, pa = a:getsockname()
  local _, pb = b:getsockname()
  a:close()
  b:close()
  return tonumber(pa), tonumber(pb)
end

return S
