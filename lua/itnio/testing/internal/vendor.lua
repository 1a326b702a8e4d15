--- Private to lua-itnio's test kit. The vendor, emulated: what ITNIO's server does with a
-- request to an endpoint the core knows, as one piece of plain Lua with no I/O of its own.
-- Two hosts drive it: the sandbox (itnio.testing.internal.handler, inside nginx, its store in
-- lua_shared_dicts) and the in-process double (itnio.testing, its store in Lua tables). One
-- emulation, so that the two cannot drift apart.
--
--     local v = vendor.new{ key, secret, window, skew, allow_ip, hold, tasks, store, clock, sign }
--     local reply = v:handle("recall_update", { method, remote_addr, connection, headers, body })
--       -> { status, body, ctype, headers, delay = seconds to wait first } or { reset = true }
--
-- The checks, in the vendor's order: a fault a test queued (delay, an HTTP status, a reset, a
-- raw answer, a vendor code); the method; the IP allow-list (-2); Api-Key, Timestamp and Sign
-- (-1); the Timestamp window (-16); the body: JSON, then every rule by the core's validator
-- (-22); then what the endpoint does (recall_update: only a Pending task may be edited; the
-- body is stored as its new self).
--
-- A store is three dicts with the methods of nginx's shared dicts that this module uses (get,
-- set, safe_set, incr, add, delete, flush_all, flush_expired, lpop, lpush, rpush, llen):
-- `tasks` (status:<id>, updates:<id>, at:<id>, body:<id>), `faults` (list "queue" of
-- "<remaining count> <json>") and `stats` (requests, connections, accepted, arrival:<n>). `vendor.memory()`
-- makes one in Lua tables.
local cjson = require "cjson.safe"
local core  = require "itnio.core"

local type, tostring, tonumber, pairs, ipairs, pcall, next, setmetatable =
  type, tostring, tonumber, pairs, ipairs, pcall, next, setmetatable
local concat, remove, insert = table.concat, table.remove, table.insert
local floor, abs = math.floor, math.abs
local fmt, lower = string.format, string.lower

local _M = {}

local JSON_CT = "application/json;charset=UTF-8"
local SUCCESS = '{"code":0,"msg":"success","data":null}'
local PASSTHROUGH = { passthrough = true }

--- The vendor's messages for its documented codes (its page, "Response").
_M.MESSAGES = {
  [0] = "success",
  [-1] = "account authentication exception",
  [-2] = "IP limit",
  [-16] = "timestamp expired",
  [-18] = "system exception",
  [-22] = "parameter exception",
}

--- The tasks a vendor starts with (and a reset restores): 299 and 301 Pending, 300 Running.
_M.SEEDS = {
  { id = 299, status = "Pending" },
  { id = 300, status = "Running" },
  { id = 301, status = "Pending" },
}

--- A task id as the store keys it (a whole number, no exponent).
-- @tparam number n the id
-- @treturn string
function _M.id_string(n)
  return fmt("%.0f", n)
end
local id_string = _M.id_string

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

--- The HTTP date (IMF-fixdate) of t, seconds since the epoch: the vendor's Date header
-- (written by hand: os.date's names follow the C locale).
-- @tparam number t the time
-- @treturn string
function _M.http_date(t)
  local d = os.date("!*t", floor(t))
  return fmt("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[d.wday], d.day, MONTHS[d.month], d.year,
             d.hour, d.min, d.sec)
end

-- ---------------------------------------------------------------------------------------
-- A store in Lua tables, for the double

local Dict = {}
Dict.__index = Dict

local function dict_get(d, k) return d.data[k] end
local function dict_set(d, k, v) d.data[k] = v; return true end
local function dict_incr(d, k, n, init)
  local v = d.data[k]
  if v == nil then
    if init == nil then return nil, "not found" end
    v = init
  end
  if type(v) ~= "number" then return nil, "not a number" end
  v = v + n
  d.data[k] = v
  return v
end
local function dict_add(d, k, v)
  if d.data[k] ~= nil then return false, "exists" end
  d.data[k] = v
  return true
end
local function dict_delete(d, k) d.data[k] = nil end
local function dict_flush(d) d.data = {} end
local function dict_noop() end
local function dict_list(d, k)
  local l = d.data[k]
  if l == nil then l = {}; d.data[k] = l end
  return l
end
local function dict_lpop(d, k)
  local l = d.data[k]
  if not l or #l == 0 then return nil end
  return remove(l, 1)
end
local function dict_lpush(d, k, v) local l = dict_list(d, k); insert(l, 1, v); return #l end
local function dict_rpush(d, k, v) local l = dict_list(d, k); l[#l + 1] = v; return #l end
local function dict_llen(d, k) local l = d.data[k]; return l and #l or 0 end
Dict.get, Dict.set, Dict.safe_set, Dict.incr, Dict.add = dict_get, dict_set, dict_set, dict_incr, dict_add
Dict.delete, Dict.flush_all, Dict.flush_expired = dict_delete, dict_flush, dict_noop
Dict.lpop, Dict.lpush, Dict.rpush, Dict.llen = dict_lpop, dict_lpush, dict_rpush, dict_llen

--- A store in Lua tables (one process): { tasks, faults, stats }.
-- @treturn table the store
function _M.memory()
  local function dict() return setmetatable({ data = {} }, Dict) end
  return { tasks = dict(), faults = dict(), stats = dict() }
end

-- ---------------------------------------------------------------------------------------
-- Faults: what a test queues for the next requests

local FAULT_KINDS = { delay = true, status = true, reset = true, answer = true, code = true }

local function is_int(v, min, max)
  return type(v) == "number" and v == floor(v) and v >= min and v <= max
end
_M.is_int = is_int

--- Why f is not a fault, or nil. A fault is `{ kind, count }` and, by kind: delay `ms`;
-- status `status` (and `body`, `retry_after`, `headers`); code `code` (and `msg`); answer
-- (`status`, `body`, `headers`); reset.
-- @tparam any f the fault
-- @treturn string|nil what is wrong
function _M.check_fault(f)
  if type(f) ~= "table" then return "a fault must be a JSON object" end
  if not FAULT_KINDS[f.kind] then
    return "kind must be one of delay, status, reset, answer, code"
  end
  if f.count ~= nil and not is_int(f.count, 1, 1e9) then return "count must be an integer >= 1" end
  local k = f.kind
  if k == "delay" and not (type(f.ms) == "number" and f.ms >= 0 and f.ms <= 600000) then
    return "delay needs ms, a number of milliseconds from 0 to 600000"
  end
  if k == "status" and not is_int(f.status, 200, 599) then
    return "status needs status, an HTTP status from 200 to 599"
  end
  if k == "answer" and f.status ~= nil and not is_int(f.status, 200, 599) then
    return "answer's status must be an HTTP status from 200 to 599"
  end
  if (k == "status" or k == "answer") and f.body ~= nil and type(f.body) ~= "string" then
    return k .. "'s body must be a string"
  end
  if f.headers ~= nil then
    if type(f.headers) ~= "table" then return "headers must be an object" end
    for hk, hv in pairs(f.headers) do
      if type(hk) ~= "string" or (type(hv) ~= "string" and type(hv) ~= "number") then
        return "headers must map names to strings or numbers"
      end
    end
  end
  if f.retry_after ~= nil and type(f.retry_after) ~= "number" and type(f.retry_after) ~= "string" then
    return "retry_after must be a number or a string"
  end
  if k == "code" and type(f.code) ~= "number" then return "code needs code, a number" end
  if f.msg ~= nil and type(f.msg) ~= "string" then return "msg must be a string" end
  return nil
end

local DEFAULT_STATUS_BODY = {
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Temporarily Unavailable", [504] = "Gateway Time-out",
}

-- ---------------------------------------------------------------------------------------
-- The vendor

local Vendor = {}
Vendor.__index = Vendor

local function parse_allow(list)
  local set, any = {}, false
  for ip in tostring(list):gmatch("[^,%s]+") do
    if ip == "*" then any = true else set[ip] = true end
  end
  return set, any
end

--- A vendor. o: `key`, `secret` (the account), `window` (seconds a Timestamp may be off, 300),
-- `skew` (seconds the vendor's clock is ahead, 0), `allow_ip` ("127.0.0.1,::1"; "*" for any),
-- `hold` (seconds every answer waits, 0), `tasks` (the seeded tasks, { {id, status}, ... }),
-- `store` (see above; `vendor.memory()` unless given), `clock` (Unix seconds, a function),
-- `sign(key, secret, timestamp)` (the MD5 the Sign must match: the host's own).
-- @tparam table o the options
-- @treturn table the vendor
function _M.new(o)
  local allow, any = parse_allow(o.allow_ip or "127.0.0.1,::1")
  return setmetatable({
    key = tostring(o.key), secret = tostring(o.secret), window = o.window or 300, skew = o.skew or 0,
    hold = o.hold or 0, allow = allow, allow_any = any, seeds = o.tasks or _M.SEEDS,
    store = o.store or _M.memory(), clock = o.clock, sign = o.sign,
  }, Vendor)
end

--- Seconds on the vendor's (skewed) clock.
function Vendor:now()
  return self.clock() + self.skew
end

--- Tasks reseeded, faults and stats cleared.
function Vendor:reset()
  for _, d in pairs(self.store) do
    d:flush_all()
    d:flush_expired()
  end
  local t = self.store.tasks
  for _, s in ipairs(self.seeds) do
    local id = id_string(s.id)
    t:set("status:" .. id, s.status)
    t:set("updates:" .. id, 0)
  end
end

--- Sets (or makes) a task's status.
-- @tparam number id the task's keyId
-- @tparam string status its status ("Pending", "Running", ...)
function Vendor:set_task(id, status)
  local t, k = self.store.tasks, id_string(id)
  local ok, err = t:set("status:" .. k, status)
  if ok and not t:get("updates:" .. k) then ok, err = t:set("updates:" .. k, 0) end
  return ok, err
end

--- The stored task as JSON text, or nil: {"keyId","status","updates","updated_at","task"}.
-- @tparam string id the task's keyId, as id_string makes it
function Vendor:task_json(id)
  local t = self.store.tasks
  local status = t:get("status:" .. id)
  if not status then return nil end
  local at = t:get("at:" .. id)
  return '{"keyId":' .. id
    .. ',"status":' .. cjson.encode(status)
    .. ',"updates":' .. id_string(t:get("updates:" .. id) or 0)
    .. ',"updated_at":' .. (at and fmt("%.3f", at) or "null")
    .. ',"task":' .. (t:get("body:" .. id) or "null") .. '}'
end

--- Queues faults (each checked: nil and why for the first that is none), for the next requests.
-- @tparam table list a fault or a list of them
-- @treturn int|nil the queue's length
-- @treturn string why not
function Vendor:push_faults(list)
  if type(list) == "table" and list[1] == nil then list = { list } end
  if type(list) ~= "table" then return nil, "a fault must be a JSON object" end
  for _, f in ipairs(list) do
    local bad = _M.check_fault(f)
    if bad then return nil, bad end
  end
  local q = self.store.faults
  for _, f in ipairs(list) do
    local len, err = q:rpush("queue", (f.count or 1) .. " " .. cjson.encode(f))
    if not len then return nil, "cannot queue the fault: " .. tostring(err) end
  end
  return q:llen("queue")
end

--- The queue of faults: { length, remaining, queue = { {kind, count}, ... } }.
function Vendor:faults()
  local q = self.store.faults
  local n = q:llen("queue") or 0
  local list, remaining = {}, 0
  for _ = 1, n do   -- rotate the list once to look at it (no yield in between)
    local raw = q:lpop("queue")
    if not raw then break end
    q:rpush("queue", raw)
    local c, json = raw:match("^(%d+) (.*)$")
    local f = cjson.decode(json) or {}
    list[#list + 1] = { kind = f.kind, count = tonumber(c) }
    remaining = remaining + tonumber(c)
  end
  return { length = n, remaining = remaining, queue = list }
end

--- Empties the queue of faults.
function Vendor:clear_faults()
  self.store.faults:flush_all()
end

-- Pops the next fault (consuming one of its count), or nil. No yield between the pop and the
-- push back, so it is atomic within an nginx worker.
local function next_fault(self)
  local q = self.store.faults
  local raw = q:lpop("queue")
  if not raw then return nil end
  local n, json = raw:match("^(%d+) (.*)$")
  n = tonumber(n)
  if n and n > 1 then q:lpush("queue", (n - 1) .. " " .. json) end
  local f = cjson.decode(json)
  -- (JSON numbers come back as floats under Lua 5.3+: a status or a Retry-After is written
  -- as a whole number, as the sandbox's nginx writes them)
  if type(f) == "table" then
    if type(f.status) == "number" then f.status = floor(f.status) end
    if type(f.retry_after) == "number" and f.retry_after == floor(f.retry_after) then
      f.retry_after = fmt("%d", f.retry_after)
    end
  end
  return f
end

--- How many requests' arrival times a vendor keeps (from the first since the last reset).
_M.ARRIVALS = 20000

--- When each request to the API arrived (seconds on the vendor's unskewed clock), in order
-- of arrival, for the first ARRIVALS requests since the last reset.
-- @treturn table the times
function Vendor:arrivals()
  local s, t = self.store.stats, {}
  for i = 1, math.min(s:get("requests") or 0, _M.ARRIVALS) do
    local at = s:get("arrival:" .. i)
    if at then t[#t + 1] = at end
  end
  return t
end

--- The counters: { requests, connections, accepted }.
function Vendor:stats()
  local s = self.store.stats
  return { requests = s:get("requests") or 0, connections = s:get("connections") or 0,
           accepted = s:get("accepted") or 0 }
end

-- The vendor's answer: HTTP 200, {"code":N,"msg":"...","data":null}, after the hold.
local function answer(self, reply, code, msg)
  reply.status, reply.ctype = 200, JSON_CT
  reply.delay = (reply.delay or 0) + self.hold
  if code == 0 and msg == nil then
    reply.body = SUCCESS
  else
    reply.body = '{"code":' .. (type(code) == "number" and fmt("%.14g", code) or cjson.encode(code))
      .. ',"msg":' .. cjson.encode(msg or _M.MESSAGES[code] or "error") .. ',"data":null}'
  end
  return reply
end

-- A fault's answer, or nil when the request goes on to the checks (a delay).
local function apply_fault(self, f, reply)
  local k = f.kind
  if k == "delay" then
    reply.delay = (reply.delay or 0) + f.ms / 1000
    return nil
  end
  if k == "reset" then
    reply.reset = true
    return reply
  end
  if k == "code" then return answer(self, reply, f.code, f.msg) end
  reply.delay = (reply.delay or 0) + self.hold
  local headers = {}
  for hk, hv in pairs(f.headers or {}) do headers[hk] = hv end
  if f.retry_after ~= nil then headers["Retry-After"] = tostring(f.retry_after) end
  reply.headers = headers
  if k == "status" then
    local body = f.body
    if not body then
      local title = f.status .. " " .. (DEFAULT_STATUS_BODY[f.status] or "Error")
      body = "<html>\r\n<head><title>" .. title .. "</title></head>\r\n<body>\r\n<center><h1>"
        .. title .. "</h1></center>\r\n</body>\r\n</html>\r\n"
    end
    reply.status, reply.body, reply.ctype = f.status, body, "text/html"
    return reply
  end
  -- answer: exactly the given status, body and headers
  reply.status, reply.body, reply.ctype = f.status or 200, f.body or "", JSON_CT
  return reply
end

-- One header's value, by a lower-case name (headers: names in any case; a list of values
-- when the request repeated it).
local function header(h, name)
  local v = h[name]
  if v == nil then
    for k, x in pairs(h) do
      if type(k) == "string" and lower(k) == name then v = x; break end
    end
  end
  if type(v) == "table" then return nil, "more than one " .. name .. " header" end
  return v
end

-- Nil when the headers authenticate, else the detail of the -1 message.
local function check_auth(self, h)
  local key, err = header(h, "api-key")
  if err then return err end
  if not key or key == "" then return "missing Api-Key header" end
  if key ~= self.key then return "unknown Api-Key" end
  local ts
  ts, err = header(h, "timestamp")
  if err then return err end
  if not ts or ts == "" then return "missing Timestamp header" end
  if not ts:find("^%d+$") then return "Timestamp is not a decimal number of seconds" end
  local sign
  sign, err = header(h, "sign")
  if err then return err end
  if not sign or sign == "" then return "missing Sign header" end
  if #sign ~= 32 or not sign:find("^%x+$") then return "Sign is not 32 hex digits" end
  if not core.consteq(lower(sign), self.sign(key, self.secret, ts)) then return "Sign does not match" end
  return nil
end

local function rule_message(errs)
  local parts = {}
  for i, e in ipairs(errs) do
    parts[i] = tostring(e.rule) .. " " .. tostring(e.field) .. ": " .. tostring(e.message)
  end
  if errs.truncated then parts[#parts + 1] = "(more errors not listed)" end
  return "parameter exception: " .. concat(parts, "; ")
end

-- What an accepted request of an endpoint does: nil (then success), or the answer's code and
-- message. decoded: the body as read; body: as the core wrote it.
local ACCEPT = {}

-- recall_update: only a Pending task may be edited; the body is stored as its new self.
function ACCEPT.recall_update(self, decoded, body)
  local id = id_string(decoded.keyId)
  local t = self.store.tasks
  local status = t:get("status:" .. id)
  if not status then return -22, "task " .. id .. " does not exist" end
  if status ~= "Pending" then
    return -22, "task " .. id .. " is not Pending (status " .. status
      .. "), only Pending tasks can be edited"
  end
  local stored = t:safe_set("body:" .. id, body)
  if not stored then return -18, "system exception" end
  t:incr("updates:" .. id, 1, 0)
  t:set("at:" .. id, self:now())
  return nil
end

--- Answers one request to the endpoint named name, as the vendor would. req: `method`,
-- `remote_addr`, `connection` (an id: requests on one connection share it), `headers`
-- (name -> value, names in any case), `body` (a string, or a function that reads it).
-- @tparam string name the endpoint's name ("recall_update")
-- @tparam table req the request
-- @treturn table the reply: `{ status, body, ctype, headers, delay }`, or `{ reset = true }`
function Vendor:handle(name, req)
  local stats = self.store.stats
  local n = stats:incr("requests", 1, 0)
  if n and n <= _M.ARRIVALS then stats:safe_set("arrival:" .. n, self.clock()) end
  if stats:add("conn:" .. tostring(req.connection or "?"), true) then stats:incr("connections", 1, 0) end
  local reply = {}

  local f = next_fault(self)   -- what a test queued, if anything
  if f and apply_fault(self, f, reply) then return reply end

  if req.method ~= "POST" then
    reply.status, reply.body, reply.ctype = 405, "method not allowed\n", "text/plain"
    reply.headers = { Allow = "POST" }
    return reply
  end

  -- 1. the IP allow-list
  if not self.allow_any and not self.allow[req.remote_addr] then
    return answer(self, reply, -2, "IP limit")
  end

  -- 2. Api-Key, Timestamp, Sign
  local h = req.headers or {}
  local bad = check_auth(self, h)
  if bad then return answer(self, reply, -1, "account authentication exception: " .. bad) end

  -- 3. the Timestamp window
  if abs(floor(self:now()) - tonumber(header(h, "timestamp"))) > self.window then
    return answer(self, reply, -16, "timestamp expired")
  end

  -- 4. the body
  local ctype = header(h, "content-type")
  if type(ctype) ~= "string" or not lower(ctype):find("^application/json") then
    return answer(self, reply, -22, "parameter exception: Content-Type must be application/json")
  end
  local body = req.body
  if type(body) == "function" then body = body() end
  local decoded = cjson.decode(body or "")
  if decoded == nil then return answer(self, reply, -22, "parameter exception: body is not JSON") end
  if type(decoded) ~= "table" or (next(decoded) ~= nil and decoded[1] ~= nil) then
    return answer(self, reply, -22, "parameter exception: body is not a JSON object")
  end
  -- Unknown scalar fields pass, as a server that ignores them would; typos still fail.
  local ok, written, errs = pcall(core.encode, name, decoded, PASSTHROUGH)
  if not ok then return answer(self, reply, -22, "parameter exception: " .. tostring(written)) end
  if not written then return answer(self, reply, -22, rule_message(errs)) end

  -- 5. what the endpoint does
  local accept = ACCEPT[name]
  if accept then
    local code, msg = accept(self, decoded, written)
    if code then return answer(self, reply, code, msg) end
  end
  stats:incr("accepted", 1, 0)
  return answer(self, reply, 0)
end

return _M
