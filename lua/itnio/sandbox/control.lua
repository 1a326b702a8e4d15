-- itnio.sandbox.control: the sandbox's test control plane, apart from its emulation of the
-- vendor (itnio.sandbox): the endpoints under /sandbox/ (loopback only, no auth) that read
-- and set tasks, count requests, reset, and queue faults for the next update requests, and
-- the faults themselves (applied by itnio.sandbox's update before its checks).
local ngx = ngx
local cjson = require "cjson.safe"
local sandbox = require "itnio.sandbox"

local type, tostring, tonumber, ipairs, next = type, tostring, tonumber, ipairs, next
local floor = math.floor

local reply = sandbox.internal
local send, answer, hold, tasks = reply.send, reply.answer, reply.hold, reply.tasks
local task_json, id_string, read_body = reply.task_json, reply.id_string, reply.read_body
local JSON_CT = "application/json;charset=UTF-8"

local M = {}

local function control_json(status, value)
  local body = type(value) == "string" and value or cjson.encode(value)
  return send(status, body .. "\n", "application/json")
end

---------------------------------------------------------------------------------------------
-- faults (shared dict itnio_faults, list "queue" of "<remaining count> <json>")

local FAULT_KINDS = { delay = true, status = true, reset = true, answer = true, code = true }

local function is_int(v, min, max)
  return type(v) == "number" and v == floor(v) and v >= min and v <= max
end

-- Returns nil or a message saying what is wrong with fault f.
local function check_fault(f)
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

-- Pops the next fault (consuming one of its count), or nil. No yield between the pop and the
-- push back, so it is atomic within the worker.
local function next_fault()
  local q = ngx.shared.itnio_faults
  local raw = q:lpop("queue")
  if not raw then return nil end
  local n, json = raw:match("^(%d+) (.*)$")
  n = tonumber(n)
  if n and n > 1 then q:lpush("queue", (n - 1) .. " " .. json) end
  return cjson.decode(json)
end

local DEFAULT_STATUS_BODY = {
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Temporarily Unavailable", [504] = "Gateway Time-out",
}

-- Applies fault f; returns only when the request goes on to the normal checks.
local function apply_fault(f)
  local k = f.kind
  if k == "delay" then
    ngx.sleep(f.ms / 1000)
    return
  end
  if k == "reset" then
    return ngx.exit(444) -- nginx closes the connection without sending anything
  end
  ngx.req.discard_body()
  if k == "code" then
    return answer(f.code, f.msg)
  end
  hold()
  local headers = f.headers or {}
  if f.retry_after ~= nil then headers["Retry-After"] = tostring(f.retry_after) end
  if k == "status" then
    local body = f.body
    if not body then
      local title = f.status .. " " .. (DEFAULT_STATUS_BODY[f.status] or "Error")
      body = "<html>\r\n<head><title>" .. title .. "</title></head>\r\n<body>\r\n<center><h1>"
        .. title .. "</h1></center>\r\n</body>\r\n</html>\r\n"
    end
    return send(f.status, body, "text/html", headers)
  end
  -- answer: exactly the given status, body and headers
  return send(f.status or 200, f.body or "", JSON_CT, headers)
end

--- Applies the next queued fault, if any; returns only when the request goes on to the
-- normal checks (a fault that answers ends the request).
function M.apply_next_fault()
  local f = next_fault()
  if f then apply_fault(f) end
end

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
  local q = ngx.shared.itnio_faults
  if method == "GET" then
    local n = q:llen("queue") or 0
    local list, remaining = {}, 0
    for _ = 1, n do -- rotate the list once to look at it (no yield in between)
      local raw = q:lpop("queue")
      if not raw then break end
      q:rpush("queue", raw)
      local c, json = raw:match("^(%d+) (.*)$")
      local f = cjson.decode(json) or {}
      list[#list + 1] = { kind = f.kind, count = tonumber(c) }
      remaining = remaining + tonumber(c)
    end
    if #list == 0 then list = cjson.empty_array end
    return control_json(200, { length = n, remaining = remaining, queue = list })
  elseif method == "DELETE" then
    q:flush_all()
    q:flush_expired()
    return control_json(200, { length = 0 })
  elseif method == "POST" then
    local v, err = read_json_body()
    if v == nil then return control_json(400, { error = err }) end
    local list = (type(v) == "table" and v[1] ~= nil) and v or { v }
    for _, f in ipairs(list) do
      local bad = check_fault(f)
      if bad then return control_json(400, { error = bad }) end
    end
    for _, f in ipairs(list) do
      local len, perr = q:rpush("queue", (f.count or 1) .. " " .. cjson.encode(f))
      if not len then return control_json(507, { error = "cannot queue the fault: " .. tostring(perr) }) end
    end
    return control_json(200, { length = q:llen("queue") })
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
    local t = tasks()
    t:set("status:" .. id, v.status)
    if not t:get("updates:" .. id) then t:set("updates:" .. id, 0) end
  elseif method == "DELETE" then
    local t = tasks()
    for _, p in ipairs { "status:", "updates:", "at:", "body:" } do t:delete(p .. id) end
    return control_json(200, { deleted = n })
  elseif method ~= "GET" then
    return send(405, "method not allowed\n", "text/plain", { Allow = "GET, POST, DELETE" })
  end
  local json = task_json(id)
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

function M.handle()
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
    sandbox.reset()
    return control_json(200, { reset = true })
  end
  if uri == "/sandbox/stats" then
    local s = ngx.shared.itnio_stats
    return control_json(200, {
      requests = s:get("requests") or 0,
      connections = s:get("connections") or 0,
      accepted = s:get("accepted") or 0,
    })
  end
  return control_json(404, { error = "not found" })
end

return M
