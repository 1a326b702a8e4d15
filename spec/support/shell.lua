-- The specs' shell toolkit: quoting, running a command (its output and whether it exited
-- 0), the repository's root, free ports. Runs under Lua 5.1 (LuaJIT) .. 5.4.
--
--   local shell = require "support.shell"
--   local out, ok = shell.run("cmd " .. shell.quote(arg))   shell.root   shell.free_ports()
--   shell.read(path) -> its bytes, or nil when it cannot be opened    shell.write(path, text)
--   shell.tmpdir() -> the path of a new empty directory
--   shell.lua: the interpreter that runs the specs, for a child Lua
local socket = require "socket"

local S = {}

-- The interpreter that runs the specs (arg's lowest index): a child Lua runs under the same
-- one (make asan's is an interpreter linked with the sanitizers' runtime).
do
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  S.lua = arg and arg[i] or (jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+")))
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
S.quote = quote

-- Runs a shell command; returns its output (stdout and stderr) and whether it exited 0.
-- The status travels in the output: LuaJIT's pipe:close() does not report it.
function S.run(cmd)
  local p = assert(io.popen("sh -c " .. quote(cmd) .. " 2>&1; echo \"__rc=$?\"", "r"))
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

-- A new empty directory (a name os.tmpname reserved, made a directory); raises when it cannot.
function S.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  local out, ok = S.run("mkdir " .. quote(dir))
  assert(ok, out)
  return dir
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
