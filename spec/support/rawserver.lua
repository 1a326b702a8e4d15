-- A raw HTTP peer for the ngx transport's reader: answers every request with the bytes of
-- ANSWER_FILE (read afresh each time), then closes. Stops after IDLE seconds without a
-- connection, so a forgotten one never lingers.   lua5.4 rawserver.lua PORT ANSWER_FILE [IDLE]
local socket = require "socket"
local port, file, idle = tonumber(arg[1]), arg[2], tonumber(arg[3] or "60")
local srv = assert(socket.bind("127.0.0.1", port))
srv:settimeout(idle)
io.stdout:write("listening\n")
io.stdout:flush()
while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  local len = 0
  while true do
    local line = c:receive("*l")
    if not line or line == "" then break end
    local n = line:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  if len > 0 then c:receive(len) end
  local f = io.open(file, "rb")
  local answer = f and f:read("*a") or ""
  if f then f:close() end
  c:send(answer)
  c:close()
end
