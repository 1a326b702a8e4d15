--- Private to lua-itnio. The libcurl transport (the default outside nginx), one per client,
-- with both ways to wait:
--
--     local t = curl.new(opts)
--     local ans, fail = t:send(method, url, lines, body, timeout, ct)   blocking, keep-alive
--     local id, key = t:submit(method, url, lines, body, timeout, ct)  on the multi handle
--     local id, key = t:submit_task(method, url, lines, timeout, ct, endpoint, task, passthrough)
--     t:open() -> true | nil, fail        makes the multi handle now (submit makes it too)
--     local key, ans, fail, body = t:ready()   a finished request (nil: none)   t:wait(seconds)
--     t:cancel(id) -> sent    t:close()
--
-- A request in flight has an id (for cancel) and a key: a small number distinct among the
-- requests in flight (its slot in the multi handle), so that a runner may keep them in arrays.
--
-- A request is six values (itnio.internal.call); an answer and a failure are the core's own
-- (Http:perform, Multi:take): `{ status, headers, body, reused }`, or `{ plain = true,
-- message, head, reused }` for a plain success the core recognised; `nil, { reason, code,
-- message, sent }` when no answer came. submit_task's body is written by the core straight
-- from the task into its transfer (no Lua string); nil, false and the broken rules when the
-- task breaks one. libcurl itself resends a request once on a fresh connection when a
-- kept-alive one turns out closed before any answer.
local core = require "itnio.core"

local pcall, setmetatable, tostring, assert = pcall, setmetatable, tostring, assert
local unpack = table.unpack or unpack   -- luacheck: ignore 113 (5.1's)

local _M = {}

_M.default_user_agent = "lua-itnio/" .. core._VERSION .. " libcurl/" .. core.curl_version()

local Curl = {}
Curl.__index = Curl
Curl.name = "curl"

--- A new transport (its handles are made on first use).
-- @tparam table opts the client's transport options: cafile, capath, proxy, user_agent,
-- max_body, insecure (exactly true turns verification off)
function _M.new(opts)
  return setmetatable({ opts = {
    cafile = opts.cafile, capath = opts.capath, proxy = opts.proxy, max_body = opts.max_body,
    user_agent = opts.user_agent or _M.default_user_agent, insecure = opts.insecure == true,
    fast = true,   -- plain successes as { plain = true, ... }
  } }, Curl)
end

--- Sends one request and waits for its answer.
function Curl:send(method, url, lines, body, timeout, ct)
  local h = self.easy
  if not h then
    h = core.http_new(self.opts)
    self.easy = h
  end
  return h:perform(method, url, lines, body, timeout, ct)
end

local function failure(what, why)
  return nil, { reason = "other", sent = false, message = what .. tostring(why) }
end

--- Makes the multi handle the asynchronous pair rides, unless it is made: true, or nil,
-- failure (no descriptor or memory left for it).
function Curl:open()
  if self.multi then return true end
  local ok, made = pcall(core.multi_new, self.opts)
  if not ok then return failure("could not start a job: ", made) end
  self.multi = made
  return true
end

--- Starts a request on the multi handle: its id and key, or nil, failure. Nothing leaves
-- before ready or wait runs.
function Curl:submit(method, url, lines, body, timeout, ct)
  local made, fail = self:open()
  if not made then return nil, fail end
  local m = self.multi
  local ok, id, key = pcall(m.add, m, method, url, lines, body, timeout, ct)
  if not ok then return failure("could not start the transfer: ", id) end
  return id, key
end

--- Starts a request whose body the core writes from the task straight into the transfer:
-- its id and key; or nil, failure; or nil, false, the broken rules.
function Curl:submit_task(method, url, lines, timeout, ct, endpoint, task, passthrough)
  local m = self.multi
  if not m then
    local made, fail = self:open()
    if not made then return nil, fail end
    m = self.multi
  end
  local ok, id, x = pcall(m.add_task, m, method, url, lines, task, timeout, ct, endpoint, passthrough)
  if not ok then return failure("could not start the transfer: ", id) end
  if not id then return nil, false, x end
  return id, x
end

--- Queues a command for the client's store on the multi handle (Multi:redis): its key; its
-- reply comes out of ready as key, value | key, nil, failure.
-- @param rd the store's Redis (core.redis_new)
-- @tparam table cmd the command and its arguments
function Curl:redis(rd, cmd)
  if not self.multi then assert(self:open()) end
  return self.multi:redis(rd, unpack(cmd))
end

--- Does what the sockets have ready, and gives one finished request: key, answer | key,
-- nil, failure, and for a task of submit_task that was not a plain success the body it sent;
-- nil when none has finished. (Keep calling it until nil.)
function Curl:ready()
  local m = self.multi
  if not m then return nil end
  return m:take_next()
end

--- Stops a request in flight: whether any byte of it left.
-- @param id the request's id
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

--- The descriptor of the multi handle's event set, for a host's loop (nil: poll(2), or no
-- multi handle yet).
function Curl:fd()
  local m = self.multi
  return m and m:fd()
end

--- Seconds until the multi handle has work with no I/O (nil: none waits on time).
function Curl:timeout()
  local m = self.multi
  return m and m:timeout()
end

--- Frees both handles (requests in flight end); the transport can be used again after.
function Curl:close()
  if self.easy then self.easy:close() end
  if self.multi then self.multi:close() end
  self.easy, self.multi = nil, nil
end

return _M
