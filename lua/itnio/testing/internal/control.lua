-- Private to lua-itnio's test kit. The sandbox's test control plane, apart from the vendor
-- it serves: the endpoints under /sandbox/ (loopback only, no auth) that read and set tasks,
-- count requests, reset, and queue faults for the next requests. The faults themselves, and
-- the tasks, are the vendor's (itnio.testing.internal.vendor); the handler hands it over.
local ngx = ngx
local cjson = require "cjson.safe"
local vendor_mod = require "itnio.testing.internal.vendor"
local reply = require "itnio.testing.internal.reply"

local type, tostring, tonumber, ipairs, next = type, tostring, tonumber, ipairs, next

local send, read_body = reply.send, reply.read_body
local id_string, is_int = vendor_mod.id_string, vendor_mod.is_int

local M = {}

local the_vendor   -- the worker's, handed over by the handler for the request at hand

local function control_json(status, value)
  local body = type(value) == "string" and value or cjson.encode(value)
  return send(status, body .. "\n", "application/json")
end

local function tasks() return the_vendor.store.tasks end

---------------------------------------------------------------------------------------------
-- /sandbox/... (loopback only, no auth)

local function loopback(addr)
  return addr == "::1" or (addr and addr:find("^127%.") ~= nil)
end

local function read_json_body()
  local text = read_body()
  local v, err = cjson.decode(text)
  if v == nil then return nil, "body is not JSON: " .. tostring(err) end
  return v
end

local function control_faults(method)
  local v = the_vendor
  if method == "GET" then
    local f = v:faults()
    if #f.queue == 0 then f.queue = cjson.empty_array end
    return control_json(200, f)
  elseif method == "DELETE" then
    v:clear_faults()
    return control_json(200, { length = 0 })
  elseif method == "POST" then
    local body, err = read_json_body()
    if body == nil then return control_json(400, { error = err }) end
    local len, why = v:push_faults(body)
    if not len then
      return control_json(why:find("^cannot queue") and 507 or 400, { error = why })
    end
    return control_json(200, { length = len })
  end
  return send(405, "method not allowed\n", "text/plain", { Allow = "GET, POST, DELETE" })
end

local function control_task(method, digits)
  local n = tonumber(digits)
  if #digits > 16 or not n then return control_json(404, { error = "no such task" }) end
  local id = id_string(n)
  if method == "POST" or method == "PUT" then
    -- sets (or creates) a task's status: {"status":"Running"}
    local v, err = read_json_body()
    if type(v) ~= "table" or type(v.status) ~= "string" then
      return control_json(400, { error = err or 'expected {"status":"..."}' })
    end
    the_vendor:set_task(n, v.status)
  elseif method == "DELETE" then
    local t = tasks()
    for _, p in ipairs { "status:", "updates:", "at:", "body:" } do t:delete(p .. id) end
    return control_json(200, { deleted = n })
  elseif method ~= "GET" then
    return send(405, "method not allowed\n", "text/plain", { Allow = "GET, POST, DELETE" })
  end
  local json = the_vendor:task_json(id)
  if not json then return control_json(404, { error = "no such task" }) end
  return control_json(200, json)
end

-- /sandbox/tasks: many tasks at once, for campaigns. POST {"from":A,"to":B,"status":S} sets
-- (or creates) the tasks A..B; GET ?from=A&to=B counts them by how many updates each had:
-- {"tasks":N,"updates":{"0":n,"1":n,...},"never":[ids],"more":[ids]} (never: no update; more:
-- more than one; 20 ids of each at most). At most 1,000,000 ids at a time.
local RANGE_MAX = 1000000

local function range_of(from, to)
  if not (is_int(from, 0, 2 ^ 53) and is_int(to, 0, 2 ^ 53)) or to < from or to - from >= RANGE_MAX then
    return nil, "from and to must be whole numbers, from <= to, at most " .. RANGE_MAX .. " ids"
  end
  return from, to
end

local function control_tasks(method)
  local t = tasks()
  if method == "POST" then
    local v, err = read_json_body()
    if type(v) ~= "table" or type(v.status) ~= "string" then
      return control_json(400, { error = err or 'expected {"from":A,"to":B,"status":"..."}' })
    end
    local from, to = range_of(v.from, v.to)
    if not from then return control_json(400, { error = to }) end
    for n = from, to do
      local id = id_string(n)
      local ok, serr = t:set("status:" .. id, v.status)
      if ok and not t:get("updates:" .. id) then ok, serr = t:set("updates:" .. id, 0) end
      if not ok then return control_json(507, { error = "the task store is full: " .. tostring(serr) }) end
    end
    return control_json(200, { tasks = to - from + 1 })
  elseif method ~= "GET" then
    return send(405, "method not allowed\n", "text/plain", { Allow = "GET, POST" })
  end
  local q = ngx.req.get_uri_args()
  local from, to = range_of(tonumber(q.from), tonumber(q.to))
  if not from then return control_json(400, { error = to }) end
  local counts, never, more, n = {}, {}, {}, 0
  for k = from, to do
    local id = id_string(k)
    local u = t:get("updates:" .. id)
    if u then
      n = n + 1
      counts[tostring(u)] = (counts[tostring(u)] or 0) + 1
      if u == 0 and #never < 20 then never[#never + 1] = k end
      if u > 1 and #more < 20 then more[#more + 1] = k end
    end
  end
  return control_json(200, { tasks = n, updates = next(counts) and counts or cjson.empty_array,
    never = #never > 0 and never or cjson.empty_array, more = #more > 0 and more or cjson.empty_array })
end

--- Answers one request to /sandbox/..., on the worker's vendor.
-- @tparam table vendor the vendor (itnio.testing.internal.vendor)
function M.handle(vendor)
  the_vendor = vendor
  if not loopback(ngx.var.remote_addr) then
    return send(403, "forbidden\n", "text/plain")
  end
  local method = ngx.req.get_method()
  local uri = ngx.var.uri
  local digits = uri:match("^/sandbox/tasks/(%d+)$")
  if digits then return control_task(method, digits) end
  if uri == "/sandbox/tasks" then return control_tasks(method) end
  if uri == "/sandbox/faults" then return control_faults(method) end
  if uri == "/sandbox/reset" then
    if method ~= "POST" then return send(405, "method not allowed\n", "text/plain", { Allow = "POST" }) end
    ngx.req.discard_body()
    the_vendor:reset()
    return control_json(200, { reset = true })
  end
  if uri == "/sandbox/stats" then return control_json(200, the_vendor:stats()) end
  if uri == "/sandbox/arrivals" then
    local t = the_vendor:arrivals()
    for i = 1, #t do t[i] = string.format("%.6f", t[i]) end
    return control_json(200, '{"arrivals":[' .. table.concat(t, ",") .. ']}')
  end
  return control_json(404, { error = "not found" })
end

return M
