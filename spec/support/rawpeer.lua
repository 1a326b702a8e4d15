-- Starts spec/support/rawserver.lua (a raw HTTP peer that answers with the bytes we choose)
-- on a free port, for the specs of both transports' readers.
--
--   local peer = require("support.rawpeer").start(".lua")   -- the answer file's suffix
--   peer.port, peer.file, peer.url        ("http://127.0.0.1:<port>")
--   peer:answer(bytes)                    -- a plain answer file: these bytes
--   peer:answer{ bytes = ..., dribble = s, forever = ..., keep = true, after = ... }  -- .lua
--   peer:stop()
local socket  = require "socket"
local sandbox = require "support.sandbox"

local Peer = {}
Peer.__index = Peer

local M = {}

function M.start(suffix)
  local self = setmetatable({ port = sandbox.free_ports(), file = os.tmpname() .. (suffix or "") }, Peer)
  self.url = "http://127.0.0.1:" .. self.port
  local out = sandbox.run("cd " .. sandbox.shell_quote(sandbox.root)
    .. " && (lua5.4 spec/support/rawserver.lua "
    .. self.port .. " " .. self.file .. " 300 >/dev/null 2>&1 & echo $!)")
  self.pid = out:match("(%d+)")
  for _ = 1, 100 do
    local c = socket.connect("127.0.0.1", self.port)
    if c then c:close(); return self end
    socket.sleep(0.05)
  end
  self:stop()
  error("support.rawpeer: the raw peer did not start on port " .. self.port)
end

function Peer:answer(a)
  local f = assert(io.open(self.file, "wb"))
  if type(a) == "table" then
    f:write(("return { bytes = %q, dribble = %s, forever = %s, keep = %s, after = %s }"):format(a.bytes,
      tostring(a.dribble), a.forever and ("%q"):format(a.forever) or "nil", tostring(a.keep),
      a.after and ("%q"):format(a.after) or "nil"))
  else
    f:write(a)
  end
  f:close()
end

function Peer:stop()
  if self.pid then sandbox.run("kill " .. self.pid) end
  self.pid = nil
  os.remove(self.file)
  os.remove(self.file .. ".reused")
end

return M
