--- The libcurl transport (the default outside nginx). One object per client, with both ways
-- to wait:
--
--   local t = curl.new(opts)
--   local resp, failure = t:send(req)       blocking, on one easy handle (keep-alive)
--   local id, failure = t:submit(req)       starts a request on one multi handle; never waits
--   t:open() -> true | nil, failure         makes that handle now (submit makes it too)
--   local id, resp, failure = t:ready()     a finished request (or nil); t:wait(seconds)
--   t:cancel(id) -> sent    t:pending()    t:close()
--
-- A request is { method, url, body, timeout, connect_timeout, headers } (the client's own
-- also carry `lines`, its headers as libcurl takes them, made once a second). An answer is
-- { status, headers, body, reused }, headers with lower-case names (parsed on first use: most
-- answers never need one); a failure is { reason, code, message, sent, answered }, reason as
-- TransportError's. A plain success (HTTP 200, code 0, a plain message, no data: the answer
-- that needs no decision) comes as true, its message, the raw header block and whether the
-- connection was reused, instead of a table, recognised in C (core.plain_success), so that
-- the common case makes no table at all; call.outcome takes both. libcurl itself resends a request once on a fresh connection when a reused one turns
-- out closed before any answer.
local core = require "itnio.core"

local pairs, setmetatable, rawset, pcall, tostring = pairs, setmetatable, rawset, pcall, tostring
local sort = table.sort

local _M = {}

local SLOTS = core.MULTI_SLOTS   -- an id is its generation * SLOTS + its slot + 1

_M.default_user_agent = "lua-itnio/" .. core._VERSION .. " libcurl/" .. core.curl_version()

--- The options of a libcurl handle (http_new, multi_new) from the client's transport options:
-- cafile, capath, proxy, user_agent, max_body, insecure (exactly true turns verification off).
-- @tparam table opts the client's transport options
function _M.handle_opts(opts)
  return {
    cafile = opts.cafile, capath = opts.capath, proxy = opts.proxy, max_body = opts.max_body,
    user_agent = opts.user_agent or _M.default_user_agent, insecure = opts.insecure == true,
    fast = true,
  }
end

-- An answer's headers, parsed from libcurl's raw block the first time one is read (then a
-- plain table: pairs sees them all).
local RAW = {}
local lazy = {}
lazy.__index = function(h, name)
  local raw = h[RAW]
  setmetatable(h, nil)
  h[RAW] = nil
  for k, v in pairs(core.parse_headers(raw)) do rawset(h, k, v) end
  return h[name]
end
local function headers_of(head)
  return setmetatable({ [RAW] = head }, lazy)
end

--- An answer's headers as a plain table (lower-case names), whoever made them.
-- @tparam table resp an answer
function _M.headers(resp)
  local h = resp.headers
  if h[RAW] ~= nil then local _ = h.date end   -- (parses them all)
  return h
end

-- A request's header lines, as libcurl takes them.
local function lines_of(req)
  local lines = req.lines
  if lines then return lines end
  lines = {}
  for name, value in pairs(req.headers) do lines[#lines + 1] = name .. ": " .. value end
  sort(lines)
  return lines
end

local Curl = {}
Curl.__index = Curl
Curl.name = "curl"

--- _M.new(opts) -> the transport (opts: see handle_opts). Its handles are made on first use.
-- @tparam table opts the client's transport options
function _M.new(opts)
  return setmetatable({ opts = _M.handle_opts(opts) }, Curl)
end

--- Sends one request and waits for its answer.
-- @tparam table req the request
function Curl:send(req)
  local h = self.easy
  if not h then
    h = core.http_new(self.opts)
    self.easy = h
  end
  local status, head, body, reused = h:perform(req.method, req.url, lines_of(req), req.body,
                                               req.timeout, req.connect_timeout)
  if not status then return nil, head end
  if status == true then return true, head, body, reused end   -- a plain success: msg, raw head
  return { status = status, headers = headers_of(head), body = body, reused = reused }
end

--- Makes the multi handle the asynchronous pair rides, unless it is made: true, or nil,
-- failure (no descriptor or memory left for it).
function Curl:open()
  if self.multi then return true end
  local ok, made = pcall(core.multi_new, self.opts)
  if not ok then
    return nil, { reason = "other", sent = false, message = "could not start a job: " .. tostring(made) }
  end
  self.multi = made
  return true
end

--- Starts a request on the multi handle: its id, or nil, failure (no descriptor or memory
-- left for the handle). Nothing leaves before ready or wait runs.
-- @tparam table req the request
function Curl:submit(req)
  local made, failure = self:open()
  if not made then return nil, failure end
  local m = self.multi
  local ok, id = pcall(m.add, m, req.method, req.url, lines_of(req), req.body, req.timeout,
                       req.connect_timeout)
  if not ok then
    return nil, { reason = "other", sent = false, message = "could not start the transfer: " .. tostring(id) }
  end
  return id
end

--- Starts a request whose body is a task the core validates and writes straight into the
-- transfer (no body string is made): its id; or nil, failure; or false, the broken rules.
-- @tparam table req the request without its body
-- @tparam string endpoint the endpoint's name
-- @tparam table task the body, as a table
-- @tparam boolean passthrough send unknown scalar fields
function Curl:submit_task(req, endpoint, task, passthrough)
  local made, failure = self:open()
  if not made then return nil, failure end
  local m = self.multi
  local ok, id, errs = pcall(m.add_task, m, req.method, req.url, req.lines, task, req.timeout,
                             req.connect_timeout, endpoint, passthrough == true)
  if not ok then
    return nil, { reason = "other", sent = false, message = "could not start the transfer: " .. tostring(id) }
  end
  if not id then return false, errs end
  return id
end

--- Does what the sockets have ready, and gives one finished request: id, answer, or id,
-- nil, failure, or id, true, message, raw header block, reused (a plain success); nil when
-- none has finished. (Keep calling it until nil.)
function Curl:ready()
  local m = self.multi
  if not m then return nil end
  local id = m:next_done()
  if not id then
    m:perform()
    id = m:next_done()
    if not id then return nil end
  end
  local status, head, body, reused = m:take(id)
  if not status then return id, nil, head end
  if status == true then return id, true, head, body, reused end   -- a plain success: msg, raw head
  return id, { status = status, headers = headers_of(head), body = body, reused = reused }
end

--- A request's key: a small positive number, distinct among the requests in flight (the
-- multi handle's slot), so that a runner may keep them in arrays instead of hashes.
-- @param id the request's id, from submit
function Curl.key(id)
  return (id - 1) % SLOTS + 1
end

--- Stops a request in flight: whether any byte of it left.
-- @param id the request's id, from submit
function Curl:cancel(id)
  local m = self.multi
  return m ~= nil and m:cancel(id) == true
end

--- Waits at most seconds until a request has something to do.
-- @tparam number seconds the most to wait
function Curl:wait(seconds)
  local m = self.multi
  if m then m:wait(seconds) else core.sleep(seconds) end
end

--- Frees both handles (requests in flight end); the transport can be used again after.
function Curl:close()
  if self.easy then self.easy:close() end
  if self.multi then self.multi:close() end
  self.easy, self.multi = nil, nil
end

return _M
