--- The OpenResty transport: HTTP/1.1 on nginx cosockets, so a call never blocks the worker.
-- TLS is verified against nginx's lua_ssl_trusted_certificate unless the client was made
-- with insecure = true. Connections go back to nginx's keep-alive pool when the answer
-- allows it. The HTTP reader is small and strict: it reads one answer to one POST, caps
-- the header block and the body, and closes the socket on every error path, so a
-- half-read connection never goes back to the pool.
local ngx = ngx   -- luacheck: ignore
local tcp = ngx.socket.tcp

local tonumber, tostring, pairs = tonumber, tostring, pairs
local concat, sort = table.concat, table.sort
local find, lower, sub, format = string.find, string.lower, string.sub, string.format

local _M = {}

_M.default_user_agent = "lua-itnio/" .. require("itnio.core")._VERSION .. " ngx_lua/"
  .. tostring(ngx.config and ngx.config.ngx_lua_version or "?")

local MAX_HEADER_BYTES = 64 * 1024
local MAX_STALE_RETRIES = 8    -- pooled connections found closed, dropped before a fresh one
local KEEPALIVE_MS, POOL_SIZE = 60000, 32

local function parse_url(url)
  local scheme, host, port, path = url:match("^(https?)://([^/:%[%]]+):?(%d*)(/.*)$")
  if not scheme then
    scheme, host, port, path = url:match("^(https?)://(%[[%x:.]+%]):?(%d*)(/.*)$")
  end
  if not scheme then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return scheme, host, port, path
end

local function fail(sock, kind, message, sent)
  if sock then sock:close() end
  return nil, { kind = kind, message = message, sent = sent }
end

local function io_kind(err)
  if err == "timeout" then return "timeout" end
  return "reset"   -- closed, connection reset by peer, broken pipe...
end

-- A line reader bounded to max bytes: line, or nil, error ("too long" past max).
local function line_reader(sock)
  local reader = sock:receiveuntil("\r\n")
  return function(max)
    local line, err, partial = reader(max)
    if not line then return nil, err, partial end
    local more = reader(1)          -- nil: the boundary came within max bytes
    if more then return nil, "too long" end
    return line
  end
end

-- Reads the rest of the answer after the status line: headers, then the body.
local function read_answer(sock, max_body, read_line)
  local headers, head_bytes = {}, 0
  while true do
    local line, err = read_line(8192)
    if not line then
      if err == "too long" then return nil, "protocol", "a header line of the answer is too long" end
      return nil, io_kind(err), "reading headers: " .. tostring(err)
    end
    if line == "" then break end
    head_bytes = head_bytes + #line
    if head_bytes > MAX_HEADER_BYTES then return nil, "protocol", "the answer's headers pass 64 KiB" end
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "protocol", "a malformed header line in the answer" end
    name = lower(name)
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
  end

  local te, cl = headers["transfer-encoding"], headers["content-length"]
  local body, keep
  if te then
    if lower(te) ~= "chunked" then return nil, "protocol", "unsupported transfer-encoding " .. te end
    local parts, total = {}, 0
    while true do
      local size_line, e = read_line(64)
      if not size_line then return nil, e == "too long" and "protocol" or io_kind(e), "reading a chunk size: " .. tostring(e) end
      local hex = size_line:match("^(%x+)")
      local size = hex and tonumber(hex, 16)
      if not size then return nil, "protocol", "a malformed chunk size" end
      if size == 0 then
        -- trailers, if any, end with an empty line
        repeat
          local t, e2 = read_line(1024)
          if not t then return nil, e2 == "too long" and "protocol" or io_kind(e2), "reading trailers: " .. tostring(e2) end
        until t == ""
        break
      end
      total = total + size
      if total > max_body then return nil, "too_large", format("the answer is larger than %d bytes (max_body)", max_body) end
      local chunk, e3 = sock:receive(size + 2)
      if not chunk then return nil, io_kind(e3), "reading a chunk: " .. tostring(e3) end
      if sub(chunk, -2) ~= "\r\n" then return nil, "protocol", "a chunk does not end with CRLF" end
      parts[#parts + 1] = sub(chunk, 1, -3)
    end
    body, keep = concat(parts), true
  elseif cl then
    local n = tonumber(cl:match("^%s*(%d+)%s*$"))
    if not n then return nil, "protocol", "a malformed Content-Length" end
    if n > max_body then return nil, "too_large", format("the answer is larger than %d bytes (max_body)", max_body) end
    if n == 0 then
      body = ""
    else
      local e4
      body, e4 = sock:receive(n)
      if not body then return nil, io_kind(e4), "reading the body: " .. tostring(e4) end
    end
    keep = true
  else
    -- no length: the body runs to the end of the connection
    local parts, total = {}, 0
    while true do
      local data, e5, partial = sock:receive(8192)
      data = data or partial
      if data and #data > 0 then
        total = total + #data
        if total > max_body then return nil, "too_large", format("the answer is larger than %d bytes (max_body)", max_body) end
        parts[#parts + 1] = data
      end
      if e5 == "closed" then break end
      if e5 then return nil, io_kind(e5), "reading the body: " .. tostring(e5) end
    end
    body, keep = concat(parts), false
  end
  local conn = headers["connection"]
  if conn and find(lower(conn), "close", 1, true) then keep = false end
  return headers, body, keep
end

--- _M.new(opts) -> transport function. opts: insecure, max_body, user_agent,
-- connect_timeout (seconds). opts.cafile/capath do not apply here: nginx verifies with
-- lua_ssl_trusted_certificate (and lua_ssl_verify_depth) from its configuration.
function _M.new(opts)
  local insecure = opts.insecure == true
  local max_body = opts.max_body or 1024 * 1024
  local user_agent = opts.user_agent or _M.default_user_agent

  local last_url, last   -- a client sends to one URL: parse it once, not on every request

  return function(req)
    if req.url ~= last_url then last_url, last = req.url, { parse_url(req.url) } end
    local scheme, host, port, path = last[1], last[2], last[3], last[4]
    if not scheme then return fail(nil, "other", "cannot parse url " .. tostring(req.url), false) end
    -- nginx resolves names only through its `resolver`; localhost is loopback by definition.
    local server_name = (host:gsub("^%[(.*)%]$", "%1"))   -- [::1] -> ::1
    local addr = server_name == "localhost" and "127.0.0.1" or server_name
    local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    local lines = {
      "POST " .. path .. " HTTP/1.1",
      "Host: " .. host .. (default_port and "" or (":" .. port)),
      "User-Agent: " .. user_agent,
      "Content-Length: " .. #req.body,
      "Connection: keep-alive",
    }
    local names = {}
    for name in pairs(req.headers) do names[#names + 1] = name end
    sort(names)
    for i = 1, #names do
      local v = tostring(req.headers[names[i]])
      if find(names[i], "[%c:]") or find(v, "[\r\n%z]") then
        return fail(nil, "other", "a header name or value holds CR, LF or NUL", false)
      end
      lines[#lines + 1] = names[i] .. ": " .. v
    end
    local head = concat(lines, "\r\n") .. "\r\n\r\n"
    local timeout_ms = (req.timeout or 10) * 1000
    local connect_ms = (req.connect_timeout or opts.connect_timeout or 3) * 1000
    local pool = format("itnio:%s:%s:%d:%s", scheme, host, port, insecure and "insecure" or "verified")
    local started = ngx.now()

    for _ = 0, MAX_STALE_RETRIES do
      local sock = tcp()
      sock:settimeouts(connect_ms, timeout_ms, timeout_ms)
      local ok, err = sock:connect(addr, port, { pool = pool })
      if not ok then
        local kind = (find(err, "resolve", 1, true) or find(err, "resolver", 1, true)) and "resolve"
          or (err == "timeout" and "timeout" or "connect")
        return fail(sock, kind, "connect to " .. host .. ":" .. port .. ": " .. err, false)
      end
      local reused = (sock:getreusedtimes() or 0) > 0
      if scheme == "https" and not reused then
        -- lua-resty-core 0.1.25 (Debian's) reports a verification failure that completes
        -- without yielding by an assertion inside sslhandshake, and with reused_session =
        -- false it even returns true: ask for the session and take a raise as a failure.
        local called, sess, herr = pcall(sock.sslhandshake, sock, nil, server_name, not insecure)
        if not called or (sess == nil and herr ~= nil) then
          return fail(sock, "tls", "TLS handshake with " .. host .. " failed: "
            .. (called and tostring(herr) or "certificate not verified (see nginx's error log)"), false)
        end
      end
      -- What is left of the total timeout after connecting bounds the rest.
      ngx.update_time()
      local left = timeout_ms - (ngx.now() - started) * 1000
      if left <= 0 then return fail(sock, "timeout", "timeout after connecting", false) end
      sock:settimeouts(connect_ms, left, left)

      local sent
      sent, err = sock:send({ head, req.body })
      local status_line
      local read_line = line_reader(sock)
      local partial
      if sent then status_line, err, partial = read_line(1024) end
      if not status_line then
        -- A pooled connection the server had closed before any byte of an answer: the
        -- request cannot have been handled, so send it again on another connection.
        if reused and err ~= "timeout" and err ~= "too long" and (partial or "") == "" then
          sock:close()
        else
          return fail(sock, io_kind(err), (sent and "waiting for the answer: " or "sending: ") .. tostring(err), true)
        end
      else
        local status = tonumber(status_line:match("^HTTP/1%.[01] (%d%d%d)"))
        if not status then return fail(sock, "protocol", "a malformed status line in the answer", true) end
        local headers, body, keep = read_answer(sock, max_body, read_line)
        if not headers then return fail(sock, body, keep, true) end
        if keep and status_line:match("^HTTP/1%.1") then
          sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE)
        else
          sock:close()
        end
        return { status = status, headers = headers, body = body, reused = reused }
      end
    end
    return fail(nil, "reset", "every pooled connection was closed by the server", false)
  end
end

return _M
