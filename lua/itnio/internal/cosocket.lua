--- Private to lua-itnio. The OpenResty transport: HTTP/1.1 on nginx cosockets, so a call
-- never blocks the worker. It has the blocking way to wait only (`t:send(method, url, lines,
-- body, timeout, ct)`, which yields inside nginx); the shapes are itnio.internal.curl's: a
-- request in, `{ status, headers, body, reused }` (a plain success as `{ plain = true, message,
-- headers, reused }`, by core.plain_success) or `nil, { reason, message, sent }` out.
-- TLS is verified against nginx's lua_ssl_trusted_certificate unless the client was made
-- with insecure = true. Connections go back to nginx's keep-alive pool when the answer
-- allows it. The HTTP reader is small and strict: it reads one answer to one POST, caps
-- the header block and the body, and closes the socket on every error path, so a
-- half-read connection never goes back to the pool.
local ngx = ngx   -- luacheck: ignore
local tcp = ngx.socket.tcp
local core = require "itnio.core"
local plain_success = core.plain_success

local type, tonumber, tostring, pairs, setmetatable = type, tonumber, tostring, pairs, setmetatable
local concat = table.concat
local find, lower, sub, format = string.find, string.lower, string.sub, string.format
local min = math.min

local _M = {}

_M.default_user_agent = "lua-itnio/" .. core._VERSION .. " ngx_lua/"
  .. tostring(ngx.config and ngx.config.ngx_lua_version or "?")

local MAX_HEADER_BYTES = 64 * 1024
local MAX_STALE_RETRIES = 8    -- pooled connections found closed, dropped before a fresh one
local MAX_INTERIM = 8          -- 1xx answers read past before the final one
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

local function fail(sock, reason, message, sent)
  if sock then sock:close() end
  return nil, { reason = reason, message = message, sent = sent }
end

local function io_kind(err)
  if err == "timeout" then return "timeout" end
  return "reset"   -- closed, connection reset by peer, broken pipe...
end

-- A buffered reader bounded in time as a whole: every read is armed with what is left until
-- `deadline` (ms on ngx.now()'s clock) and takes what has come (receiveany), so a peer that
-- dribbles a byte at a time cannot stretch an attempt past its timeout (the cosocket's own
-- timeouts are per operation, and every byte resets them).
local function new_reader(sock, deadline, connect_ms)
  local buf, pos = "", 1
  local r = { got_any = false }

  local function fill(max)
    ngx.update_time()
    local left = deadline - ngx.now() * 1000
    if left <= 0 then return nil, "timeout" end
    sock:settimeouts(connect_ms, left, left)
    local data, err = sock:receiveany(max)
    if not data then return nil, err end
    r.got_any = true
    if pos > #buf then buf, pos = data, 1 else buf, pos = sub(buf, pos) .. data, 1 end
    return true
  end

  --- A line without its CRLF, at most max bytes: line, or nil, error ("too long" past max).
  function r.line(max)
    while true do
      local e = find(buf, "\r\n", pos, true)
      if e then
        if e - pos > max then return nil, "too long" end
        local line = sub(buf, pos, e - 1)
        pos = e + 2
        return line
      end
      if #buf - pos + 1 > max + 1 then return nil, "too long" end
      local ok, err = fill(8192)
      if not ok then return nil, err end
    end
  end

  --- Exactly n bytes, or nil, error.
  function r.bytes(n)
    local have = #buf - pos + 1
    if have >= n then
      local out = sub(buf, pos, pos + n - 1)
      pos = pos + n
      return out
    end
    local parts = { sub(buf, pos) }
    buf, pos = "", 1
    while have < n do
      local ok, err = fill(min(n - have, 65536))
      if not ok then return nil, err end
      if have + #buf > n then   -- took more than this answer: keep the rest
        parts[#parts + 1] = sub(buf, 1, n - have)
        pos = n - have + 1
        have = n
      else
        parts[#parts + 1] = buf
        have = have + #buf
        buf, pos = "", 1
      end
    end
    return concat(parts)
  end

  --- Everything up to the close, at most max bytes: data, or nil, error ("too large").
  function r.rest(max)
    local parts, total = { sub(buf, pos) }, #buf - pos + 1
    buf, pos = "", 1
    while true do
      if total > max then return nil, "too large" end
      local ok, err = fill(65536)
      if not ok then
        if err == "closed" then return concat(parts) end
        return nil, err
      end
      parts[#parts + 1] = buf
      total = total + #buf
      buf, pos = "", 1
    end
  end

  return r
end

local function too_large(max_body)
  return nil, "too_large", format("the answer is larger than %d bytes (max_body)", max_body)
end

-- Header lines up to the blank line, into headers (lower-case names; repeats gathered in a
-- list, joined once at the end: joining as they come is quadratic). Shares one byte budget
-- with the trailers of a chunked body. Returns true, or nil, kind, message.
local function read_fields(rd, headers, budget, what)
  local lists
  while true do
    local line, err = rd.line(8192)
    if not line then
      if err == "too long" then return nil, "protocol", "a " .. what .. " line of the answer is too long" end
      return nil, io_kind(err), "reading " .. what .. "s: " .. tostring(err)
    end
    if line == "" then break end
    budget.bytes = budget.bytes + #line + 2
    if budget.bytes > MAX_HEADER_BYTES then return nil, "protocol", "the answer's headers pass 64 KiB" end
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "protocol", "a malformed " .. what .. " line in the answer" end
    name = lower(name)
    local old = headers[name]
    if old == nil then
      headers[name] = value
    else
      lists = lists or {}
      local l = lists[name]
      if not l then l = { old }; lists[name] = l end
      l[#l + 1] = value
    end
  end
  if lists then for name, l in pairs(lists) do headers[name] = concat(l, ", ") end end
  return true
end

-- Reads the rest of the answer after the status line: headers, then the body.
-- Returns headers, body, keep (may the connection be pooled), or nil, kind, message.
local function read_answer(rd, max_body)
  local headers, budget = {}, { bytes = 0 }
  local ok, kind, msg = read_fields(rd, headers, budget, "header")
  if not ok then return nil, kind, msg end

  local te, cl = headers["transfer-encoding"], headers["content-length"]
  local body, keep
  if te then
    if lower(te) ~= "chunked" then return nil, "protocol", "unsupported transfer-encoding " .. te end
    local parts, total = {}, 0
    while true do
      local size_line, e = rd.line(64)
      if not size_line then
        return nil, e == "too long" and "protocol" or io_kind(e), "reading a chunk size: " .. tostring(e)
      end
      local hex = size_line:match("^(%x+)")
      local size = hex and #hex <= 8 and tonumber(hex, 16)
      if not size then return nil, "protocol", "a malformed chunk size" end
      if size == 0 then
        -- trailers, if any, end with an empty line; they share the headers' byte budget
        ok, kind, msg = read_fields(rd, {}, budget, "trailer")
        if not ok then return nil, kind, msg end
        break
      end
      total = total + size
      if total > max_body then return too_large(max_body) end
      local chunk, e3 = rd.bytes(size + 2)
      if not chunk then return nil, io_kind(e3), "reading a chunk: " .. tostring(e3) end
      if sub(chunk, -2) ~= "\r\n" then return nil, "protocol", "a chunk does not end with CRLF" end
      parts[#parts + 1] = sub(chunk, 1, -3)
    end
    -- Transfer-Encoding beside Content-Length: read as chunked (RFC 9112, 6.3), but the
    -- connection is not trusted again.
    body, keep = concat(parts), cl == nil
  elseif cl then
    local n = tonumber(cl:match("^%s*(%d+)%s*$"))
    if not n then return nil, "protocol", "a malformed Content-Length" end
    if n > max_body then return too_large(max_body) end
    if n == 0 then
      body = ""
    else
      local e4
      body, e4 = rd.bytes(n)
      if not body then return nil, io_kind(e4), "reading the body: " .. tostring(e4) end
    end
    keep = true
  else
    -- no length: the body runs to the end of the connection
    local e5
    body, e5 = rd.rest(max_body)
    if not body then
      if e5 == "too large" then return too_large(max_body) end
      return nil, io_kind(e5), "reading the body: " .. tostring(e5)
    end
    keep = false
  end
  local conn = headers["connection"]
  if conn and find(lower(conn), "close", 1, true) then keep = false end
  return headers, body, keep
end

local Ngx = {}
Ngx.__index = Ngx
Ngx.name = "ngx"

--- Sends one request and waits (yielding) for its answer.
function Ngx:send(method, url, lines, body, timeout, ct)
  return self.perform(method, url, lines, body, timeout, ct)
end

--- Nothing to free: nginx's keep-alive pool owns the connections.
function Ngx.close() end

--- _M.new(opts) -> the transport. opts: insecure, max_body, user_agent, connect_timeout
-- (seconds). opts.cafile/capath do not apply here: nginx verifies with
-- lua_ssl_trusted_certificate (and lua_ssl_verify_depth) from its configuration.
-- @tparam table opts the client's transport options
function _M.new(opts)
  local insecure = opts.insecure == true
  local max_body = opts.max_body or 1024 * 1024
  local user_agent = opts.user_agent or _M.default_user_agent

  local last_url, last   -- a client sends to one URL: parse it once, not on every request

  local function perform(method, url, header_lines, req_body, timeout, ct)
    if type(url) ~= "string" then return fail(nil, "other", "the url must be a string", false) end
    if url ~= last_url then last_url, last = url, { parse_url(url) } end
    local scheme, host, port, path = last[1], last[2], last[3], last[4]
    if not scheme then return fail(nil, "other", "cannot parse url " .. tostring(url), false) end
    -- nginx resolves names only through its `resolver`; localhost is loopback by definition.
    local server_name = (host:gsub("^%[(.*)%]$", "%1"))   -- [::1] -> ::1
    local addr = server_name == "localhost" and "127.0.0.1" or server_name
    local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    method, req_body = method or "POST", req_body or ""
    if method ~= "POST" and method ~= "GET" then
      return fail(nil, "other", "method must be GET or POST, got " .. tostring(method), false)
    end
    local lines = {
      method .. " " .. path .. " HTTP/1.1",
      "Host: " .. host .. (default_port and "" or (":" .. port)),
      "User-Agent: " .. user_agent,
      "Content-Length: " .. #req_body,
      "Connection: keep-alive",
    }
    for i = 1, #header_lines do
      local line = header_lines[i]
      if type(line) ~= "string" or find(line, "[\r\n%z]") or not find(line, "^[^%c:]+:") then
        return fail(nil, "other", "a header line is not 'Name: value', or holds CR, LF or NUL", false)
      end
      lines[#lines + 1] = line
    end
    local head = concat(lines, "\r\n") .. "\r\n\r\n"
    local timeout_ms = (timeout or 10) * 1000
    local connect_ms = (ct or opts.connect_timeout or 3) * 1000
    local pool = format("itnio:%s:%s:%d:%s", scheme, host, port, insecure and "insecure" or "verified")
    ngx.update_time()
    local deadline = ngx.now() * 1000 + timeout_ms   -- the attempt's timeout bounds it whole

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
      -- What is left of the attempt's timeout after connecting bounds everything after it.
      ngx.update_time()
      local left = deadline - ngx.now() * 1000
      if left <= 0 then return fail(sock, "timeout", "timeout after connecting", false) end
      sock:settimeouts(connect_ms, left, left)

      local sent
      sent, err = sock:send({ head, req_body })
      local rd = new_reader(sock, deadline, connect_ms)
      local status, status_line
      if sent then
        -- 1xx answers are interim (103 Early Hints, 100 Continue): read past them.
        for _ = 1, MAX_INTERIM do
          status_line, err = rd.line(1024)
          if not status_line then break end
          status = tonumber(status_line:match("^HTTP/1%.[01] (%d%d%d)"))
          if not status then return fail(sock, "protocol", "a malformed status line in the answer", true) end
          if status >= 200 or status == 101 then break end
          local read, kind, msg = read_fields(rd, {}, { bytes = 0 }, "header")
          if not read then return fail(sock, kind, msg, true) end
          status_line = nil
          err = "too many interim answers"
        end
      end
      if not status_line then
        -- A pooled connection the server had closed before any byte of an answer: the
        -- request cannot have been handled, so send it again on another connection.
        if reused and err ~= "timeout" and err ~= "too long" and not rd.got_any then
          sock:close()
        elseif err == "too many interim answers" then
          return fail(sock, "protocol", "more than " .. MAX_INTERIM .. " interim (1xx) answers", true)
        else
          return fail(sock, io_kind(err),
                      (sent and "waiting for the answer: " or "sending: ") .. tostring(err), true)
        end
      elseif status == 101 then
        return fail(sock, "protocol", "the server switched protocols (101), which was not asked for", true)
      else
        local headers, body, keep = read_answer(rd, max_body)
        if not headers then return fail(sock, body, keep, true) end
        if keep and status_line:match("^HTTP/1%.1") then
          sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE)
        else
          sock:close()
        end
        if status == 200 then   -- the answer that needs no decision, as the core's handles say it
          local plain, msg = plain_success(200, body)
          if plain then return { plain = true, message = msg, headers = headers, reused = reused } end
        end
        return { status = status, headers = headers, body = body, reused = reused }
      end
    end
    return fail(nil, "reset", "every pooled connection was closed by the server", false)
  end
  return setmetatable({ perform = perform }, Ngx)
end

return _M
