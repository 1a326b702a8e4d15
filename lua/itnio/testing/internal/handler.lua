-- Private to lua-itnio's test kit. The sandbox's nginx host: an OpenResty handler for every
-- endpoint the core knows (POST /voice/recallFlow/update). What the vendor does with a
-- request is itnio.testing.internal.vendor's, the one emulation the in-process double
-- (itnio.testing) drives too; this file reads the request, hands it over, and answers
-- (waiting, or closing the connection, as the reply says). The control plane under
-- /sandbox/ lives apart (itnio.testing.internal.control), and the replies of both in
-- itnio.testing.internal.reply.
--
-- It runs inside nginx with the Lua module (LuaJIT, Lua 5.1 API); itnio.testing.internal.conf
-- writes the config that calls these functions: init (its key=value file), header_filter, one
-- serve(name) route per endpoint, control and not_found; and three shared dicts, the
-- vendor's store (itnio_tasks, itnio_faults, itnio_stats). The Sign is checked with ngx.md5
-- (nginx's own MD5), independently of the core's signer; the body with the core's validator,
-- so the sandbox refuses what the core refuses. The only module-level state is `config`, set
-- once by init() in the master process, and the vendor each worker makes from it.
local ngx = ngx
local vendor = require "itnio.testing.internal.vendor"
local reply_ = require "itnio.testing.internal.reply"

local type, tostring, tonumber, pairs, error = type, tostring, tonumber, pairs, error
local floor = math.floor
local io_open = io.open

local M = {}

local config -- set by M.init; read only afterwards
local the_vendor -- this worker's, made from config on first use

---------------------------------------------------------------------------------------------
-- configuration

local DEFAULTS = {
  key = "sandbox-key", secret = "sandbox-secret", window = 300, skew = 0,
  allow_ip = "127.0.0.1,::1", hold_ms = 0,
}

local function integer(v, name, min)
  local n = tonumber(v)
  if not n or n ~= floor(n) or (min and n < min) then
    error("itnio sandbox: option " .. name .. " must be an integer"
      .. (min and (" >= " .. min) or "") .. ", got " .. tostring(v), 0)
  end
  return n
end

local function store()
  local shared = ngx.shared
  local s = {}
  for name, dict in pairs { tasks = "itnio_tasks", faults = "itnio_faults", stats = "itnio_stats" } do
    s[name] = shared[dict]
    if not s[name] then
      error("itnio sandbox: lua_shared_dict " .. dict .. " is missing from the nginx config", 0)
    end
  end
  return s
end

local function md5_sign(key, secret, ts) return ngx.md5(key .. secret .. ts) end

--- This worker's vendor (the emulation over the shared dicts).
function M.vendor()
  if not the_vendor then
    local c = config
    the_vendor = vendor.new{ key = c.key, secret = c.secret, window = c.window, skew = c.skew,
      allow_ip = c.allow_ip, hold = c.hold, store = store(), clock = ngx.now, sign = md5_sign }
  end
  return the_vendor
end

-- Reads the key=value file written by bin/itnio-sandbox (or takes a table), seeds the tasks.
function M.init(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  if type(opts) == "string" then
    local f, err = io_open(opts, "rb")
    if not f then error("itnio sandbox: cannot read the config file: " .. tostring(err), 0) end
    for line in f:lines() do
      local k, v = line:match("^([%w_]+)=(.*)$")
      if k then o[k] = v end
    end
    f:close()
  elseif type(opts) == "table" then
    for k, v in pairs(opts) do o[k] = v end
  end
  config = {
    key = tostring(o.key), secret = tostring(o.secret),
    window = integer(o.window, "window", 0),
    skew = integer(o.skew, "skew"),
    hold = integer(o.hold_ms, "hold_ms", 0) / 1000,
    allow_ip = tostring(o.allow_ip),
  }
  the_vendor = nil
  M.reset()
  return true
end

-- Tasks reseeded, faults and stats cleared.
function M.reset()
  M.vendor():reset()
end

---------------------------------------------------------------------------------------------
-- answering

-- Every response carries the sandbox's (skewed) clock in Date, unless a fault set its own.
function M.header_filter()
  if config and not ngx.ctx.itnio_date_set then
    ngx.header["Date"] = ngx.http_time(floor(ngx.now()) + config.skew)
  end
end

--- Answers one request to the endpoint named name, as the vendor would.
function M.serve(name)
  local reply = M.vendor():handle(name, {
    method = ngx.req.get_method(), remote_addr = ngx.var.remote_addr,
    connection = ngx.var.connection, headers = ngx.req.get_headers(200), body = reply_.read_body,
  })
  if reply.delay and reply.delay > 0 then ngx.sleep(reply.delay) end
  if reply.reset then return ngx.exit(444) end   -- nginx closes the connection, sending nothing
  ngx.req.discard_body()   -- (a no-op when the vendor read it)
  return reply_.send(reply.status, reply.body, reply.ctype, reply.headers)
end

--- The control plane's routes (/sandbox/...).
function M.control()
  return require("itnio.testing.internal.control").handle(M.vendor())
end

function M.not_found()
  ngx.req.discard_body()
  return reply_.send(404, '{"error":"not found"}\n', "application/json")
end

return M
