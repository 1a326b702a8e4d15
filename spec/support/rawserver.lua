-- A raw HTTP peer for the ngx transport's reader: answers every request with the bytes of
-- ANSWER_FILE (read afresh each time), then closes. Stops after IDLE seconds without a
-- connection, so a forgotten one never lingers.   lua5.4 rawserver.lua PORT ANSWER_FILE [IDLE]
--
-- An ANSWER_FILE ending in .lua returns a table instead, for peers that misbehave slowly:
--   { bytes = "...",          the answer
--     dribble = s,            send it one byte every s seconds
--     forever = "...",        then send this again and again until the client goes away
--     keep = true,            keep the connection: a next request on it is answered too,
--                             and counted in ANSWER_FILE .. ".reused"
--     after = "..." }         the answer to every later request while the file is unchanged
local socket = require "socket"
local port, file, idle = tonumber(arg[1]), arg[2], tonumber(arg[3] or "60")
local srv = assert(socket.bind("127.0.0.1", port))
srv:settimeout(idle)
io.stdout:write("listening\n")
io.stdout:flush()

local function read_request(c)
  local len = 0
  while true do
    local line = c:receive("*l")
    if not line then return false end
    if line == "" then break end
    local n = line:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  if len > 0 then c:receive(len) end
  return true
end

local last_source, served_it = nil, 0

local function answer()
  if file:match("%.lua$") then
    local f = io.open(file, "rb")
    local source = f and f:read("*a") or ""
    if f then f:close() end
    if source == last_source then served_it = served_it + 1 else last_source, served_it = source, 1 end
    local chunk = load(source)
    local ok, t = pcall(chunk or error)
    if not (ok and type(t) == "table") then return { bytes = "" } end
    if served_it > 1 and t.after then return { bytes = t.after } end
    return t
  end
  local f = io.open(file, "rb")
  local bytes = f and f:read("*a") or ""
  if f then f:close() end
  return { bytes = bytes }
end

local function send(c, a)
  if a.dribble then
    for i = 1, #a.bytes do
      if not c:send(a.bytes:sub(i, i)) then return false end
      socket.sleep(a.dribble)
    end
  elseif not c:send(a.bytes) then
    return false
  end
  if a.forever then
    c:settimeout(1)
    local deadline = socket.gettime() + 30
    while socket.gettime() < deadline do
      if not c:send(a.forever) then return false end
    end
  end
  return true
end

while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  local served = 0
  while read_request(c) do
    local a = answer()
    served = served + 1
    if served > 1 then
      local f = io.open(file .. ".reused", "ab")
      if f then f:write("1\n"); f:close() end
    end
    if not send(c, a) or not a.keep then break end
    c:settimeout(2)
  end
  c:close()
end
