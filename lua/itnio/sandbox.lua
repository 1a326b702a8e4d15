-- itnio.sandbox: the offline stand-in for the vendor's server, an OpenResty handler for every
-- endpoint the core knows (itnio.endpoints: POST /voice/recallFlow/update). The control
-- endpoints under /sandbox/ that tests use, and the faults they queue, live apart in
-- itnio.sandbox.control (M.control hands over to it).
--
-- It runs inside nginx with the Lua module (LuaJIT, Lua 5.1 API). itnio.sandbox.conf writes
-- the nginx config that calls these functions (one route per endpoint):
--
--   init_by_lua_block          { require("itnio.sandbox").init(ngx.config.prefix() .. "conf/sandbox.conf") }
--   header_filter_by_lua_block { require("itnio.sandbox").header_filter() }
--   location = /voice/recallFlow/update { content_by_lua_block { require("itnio.sandbox").serve("recall_update") } }
--   location /sandbox/                  { content_by_lua_block { require("itnio.sandbox").control() } }
--   location /                          { content_by_lua_block { require("itnio.sandbox").not_found() } }
--
-- and three shared dicts: itnio_tasks, itnio_faults, itnio_stats. What an accepted request
-- does is the endpoint's own (ACCEPT below): an edit of a Pending task for recall_update;
-- an endpoint with nothing of its own is answered with success.
--
-- The Sign is checked with ngx.md5 (nginx's own MD5), independently of the core's signer; the
-- body is checked with the core's validator, so the sandbox refuses what the core refuses.
-- The only module-level state is `config`, set once by init() in the master process.

local ngx = ngx
local cjson = require "cjson.safe"
local core = require "itnio.core"

local type, tostring, tonumber, pairs, ipairs, pcall, next, error =
  type, tostring, tonumber, pairs, ipairs, pcall, next, error
local concat = table.concat
local floor, abs = math.floor, math.abs
local fmt, lower = string.format, string.lower
local io_open = io.open

local M = { _VERSION = require("itnio.core")._VERSION }

local JSON_CT = "application/json;charset=UTF-8"
local SUCCESS = '{"code":0,"msg":"success","data":null}'
local PASSTHROUGH = { passthrough = true }

-- The vendor's messages for its documented codes (its page, "Response").
local MESSAGES = {
  [0] = "success",
  [-1] = "account authentication exception",
  [-2] = "IP limit",
  [-16] = "timestamp expired",
  [-18] = "system exception",
  [-22] = "parameter exception",
}

-- Seeded tasks, restored by POST /sandbox/reset.
local SEEDS = {
  { id = 299, status = "Pending" },
  { id = 300, status = "Running" },
  { id = 301, status = "Pending" },
}

local config -- set by M.init; read only afterwards

---------------------------------------------------------------------------------------------
-- configuration

local DEFAULTS = {
  key = "sandbox-key", secret = "sandbox-secret", window = 300, skew = 0,
  allow_ip = "127.0.0.1,::1", hold_ms = 0,
}

local function parse_allow(list)
  local set, any = {}, false
  for ip in list:gmatch("[^,%s]+") do
    if ip == "*" then any = true else set[ip] = true end
  end
  return set, any
end

local function integer(v, name, min)
  local n = tonumber(v)
  if not n or n ~= floor(n) or (min and n < min) then
    error("itnio.sandbox: option " .. name .. " must be an integer"
      .. (min and (" >= " .. min) or "") .. ", got " .. tostring(v), 0)
  end
  return n
end

-- Reads the key=value file written by bin/itnio-sandbox (or takes a table), seeds the tasks.
function M.init(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  if type(opts) == "string" then
    local f, err = io_open(opts, "rb")
    if not f then error("itnio.sandbox: cannot read the config file: " .. tostring(err), 0) end
    for line in f:lines() do
      local k, v = line:match("^([%w_]+)=(.*)$")
      if k then o[k] = v end
    end
    f:close()
  elseif type(opts) == "table" then
    for k, v in pairs(opts) do o[k] = v end
  end
  local c = {
    key = tostring(o.key), secret = tostring(o.secret),
    window = integer(o.window, "window", 0),
    skew = integer(o.skew, "skew"),
    hold = integer(o.hold_ms, "hold_ms", 0) / 1000,
  }
  c.allow, c.allow_any = parse_allow(tostring(o.allow_ip))
  config = c
  M.reset()
  return true
end

local function now()
  return ngx.time() + config.skew
end

---------------------------------------------------------------------------------------------
-- the task store (shared dict itnio_tasks): status:<id>, updates:<id>, at:<id>, body:<id>

local function tasks() return ngx.shared.itnio_tasks end

local function id_string(n)
  return fmt("%.0f", n)
end

local function seed()
  local t = tasks()
  for _, s in ipairs(SEEDS) do
    local id = id_string(s.id)
    t:set("status:" .. id, s.status)
    t:set("updates:" .. id, 0)
  end
end

-- The stored task as JSON text, or nil.
local function task_json(id)
  local t = tasks()
  local status = t:get("status:" .. id)
  if not status then return nil end
  local at = t:get("at:" .. id)
  return '{"keyId":' .. id
    .. ',"status":' .. cjson.encode(status)
    .. ',"updates":' .. id_string(t:get("updates:" .. id) or 0)
    .. ',"updated_at":' .. (at and fmt("%.3f", at) or "null")
    .. ',"task":' .. (t:get("body:" .. id) or "null") .. '}'
end

-- Tasks reseeded, faults and stats cleared.
function M.reset()
  local shared = ngx.shared
  for _, name in ipairs { "itnio_tasks", "itnio_faults", "itnio_stats" } do
    local d = shared[name]
    if not d then
      error("itnio.sandbox: lua_shared_dict " .. name .. " is missing from the nginx config", 0)
    end
    d:flush_all()
    d:flush_expired()
  end
  seed()
end

---------------------------------------------------------------------------------------------
-- answering

local function set_headers(headers)
  if type(headers) ~= "table" then return end
  for k, v in pairs(headers) do
    if type(k) == "string" then
      if lower(k) == "date" then ngx.ctx.itnio_date_set = true end
      ngx.header[k] = v
    end
  end
end

-- Sends one complete response with a Content-Length (never chunked).
local function send(status, body, ctype, headers)
  ngx.status = status
  ngx.header["Content-Type"] = ctype or JSON_CT
  ngx.header["Content-Length"] = #body
  set_headers(headers)
  ngx.print(body)
  return ngx.exit(ngx.HTTP_OK)
end

local function hold()
  if config.hold > 0 then ngx.sleep(config.hold) end
end

-- The vendor's answer: HTTP 200, {"code":N,"msg":"...","data":null}.
local function answer(code, msg)
  hold()
  if code == 0 and msg == nil then return send(200, SUCCESS) end
  local body = '{"code":' .. (type(code) == "number" and fmt("%.14g", code) or cjson.encode(code))
    .. ',"msg":' .. cjson.encode(msg or MESSAGES[code] or "error") .. ',"data":null}'
  return send(200, body)
end

-- Every response carries the sandbox's (skewed) clock in Date, unless a fault set its own.
function M.header_filter()
  if config and not ngx.ctx.itnio_date_set then
    ngx.header["Date"] = ngx.http_time(now())
  end
end

---------------------------------------------------------------------------------------------
-- POST /voice/recallFlow/update

local function single_header(h, name)
  local v = h[name]
  if type(v) == "table" then return nil, "more than one " .. name .. " header" end
  return v
end

-- Nil when the headers authenticate, else the detail of the -1 message.
local function check_auth(h)
  local key, err = single_header(h, "Api-Key")
  if err then return err end
  if not key or key == "" then return "missing Api-Key header" end
  if key ~= config.key then return "unknown Api-Key" end
  local ts
  ts, err = single_header(h, "Timestamp")
  if err then return err end
  if not ts or ts == "" then return "missing Timestamp header" end
  if not ts:find("^%d+$") then return "Timestamp is not a decimal number of seconds" end
  local sign
  sign, err = single_header(h, "Sign")
  if err then return err end
  if not sign or sign == "" then return "missing Sign header" end
  if #sign ~= 32 or not sign:find("^%x+$") then return "Sign is not 32 hex digits" end
  if lower(sign) ~= ngx.md5(key .. config.secret .. ts) then return "Sign does not match" end
  return nil
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file()
  if not file then return "" end
  local f = io_open(file, "rb")
  if not f then return "" end
  body = f:read("*a")
  f:close()
  return body or ""
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
function ACCEPT.recall_update(decoded, body)
  local id = id_string(decoded.keyId)
  local t = tasks()
  local status = t:get("status:" .. id)
  if not status then return -22, "task " .. id .. " does not exist" end
  if status ~= "Pending" then
    return -22, "task " .. id .. " is not Pending (status " .. status
      .. "), only Pending tasks can be edited"
  end
  local stored, err = t:safe_set("body:" .. id, body)
  if not stored then
    ngx.log(ngx.ERR, "itnio.sandbox: cannot store task ", id, ": ", err)
    return -18, "system exception"
  end
  t:incr("updates:" .. id, 1, 0)
  t:set("at:" .. id, ngx.now() + config.skew)
  return nil
end

--- Answers one request to the endpoint named name, as the vendor would.
function M.serve(name)
  local stats = ngx.shared.itnio_stats
  stats:incr("requests", 1, 0)
  if stats:add("conn:" .. ngx.var.connection, true) then stats:incr("connections", 1, 0) end

  require("itnio.sandbox.control").apply_next_fault()   -- what a test queued, if anything

  if ngx.req.get_method() ~= "POST" then
    ngx.req.discard_body()
    return send(405, "method not allowed\n", "text/plain", { Allow = "POST" })
  end

  -- 1. the IP allow-list
  if not config.allow_any and not config.allow[ngx.var.remote_addr] then
    ngx.req.discard_body()
    return answer(-2, "IP limit")
  end

  -- 2. Api-Key, Timestamp, Sign
  local h = ngx.req.get_headers(200)
  local bad = check_auth(h)
  if bad then
    ngx.req.discard_body()
    return answer(-1, "account authentication exception: " .. bad)
  end

  -- 3. the Timestamp window
  if abs(now() - tonumber(h["Timestamp"])) > config.window then
    ngx.req.discard_body()
    return answer(-16, "timestamp expired")
  end

  -- 4. the body
  local ctype = h["Content-Type"]
  if type(ctype) ~= "string" or not lower(ctype):find("^application/json") then
    ngx.req.discard_body()
    return answer(-22, "parameter exception: Content-Type must be application/json")
  end
  local decoded = cjson.decode(read_body())
  if decoded == nil then return answer(-22, "parameter exception: body is not JSON") end
  if type(decoded) ~= "table" or (next(decoded) ~= nil and decoded[1] ~= nil) then
    return answer(-22, "parameter exception: body is not a JSON object")
  end
  -- Unknown scalar fields pass, as a server that ignores them would; typos still fail.
  local ok, body, errs = pcall(core.encode, name, decoded, PASSTHROUGH)
  if not ok then
    ngx.log(ngx.ERR, "itnio.sandbox: the core raised: ", tostring(body))
    return answer(-22, "parameter exception: " .. tostring(body))
  end
  if not body then return answer(-22, rule_message(errs)) end

  -- 5. what the endpoint does
  local accept = ACCEPT[name]
  if accept then
    local code, msg = accept(decoded, body)
    if code then return answer(code, msg) end
  end
  stats:incr("accepted", 1, 0)
  return answer(0)
end

--- The handler of POST /voice/recallFlow/update (the name nginx configs of a first version call).
function M.update()
  return M.serve("recall_update")
end

function M.control()
  return require("itnio.sandbox.control").handle()
end

-- For itnio.sandbox.control (the test control plane) only: the store and the replies.
M.internal = { send = send, answer = answer, hold = hold, tasks = tasks, task_json = task_json,
               id_string = id_string, read_body = read_body }

function M.not_found()
  ngx.req.discard_body()
  return send(404, '{"error":"not found"}\n', "application/json")
end

return M
