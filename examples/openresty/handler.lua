-- The handler of examples/openresty/nginx.conf: takes a task as JSON, updates it through
-- lua-itnio, answers with the result. Inside nginx the client sends on cosockets by itself
-- (no option needed), so a slow vendor never blocks the worker.
local itnio = require "itnio"
local cjson = require "cjson.safe"

local _M = {}

-- One client per worker: it keeps the connection pool's name, the clock offset, the options.
local client, client_err

local function get_client()
  if client then return client end
  client, client_err = itnio.new{
    api_key    = os.getenv("ITNIO_API_KEY"),
    api_secret = os.getenv("ITNIO_API_SECRET"),
    base_url   = os.getenv("ITNIO_BASE_URL"),     -- nil: https://api.itniotech.com
    timeout = 10, connect_timeout = 3, max_retries = 2, deadline = 25,
    logger = function(level, message, fields)
      if level ~= "info" then
        ngx.log(level == "error" and ngx.ERR or ngx.WARN, message, " attempt=", fields.attempt)
      end
    end,
  }
  return client, client_err
end

local STATUS = {   -- the HTTP status this endpoint answers for each failure
  ValidationError = 422, ParameterError = 422, ConfigError = 500,
  AuthError = 502, IpLimitError = 502, TimestampExpiredError = 502, SystemError = 502,
  ApiError = 502, HttpError = 502, DecodeError = 502, TransportError = 504,
}

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
  return ngx.exit(status)
end

-- The request's body: in memory up to client_body_buffer_size, else the file nginx spooled
-- it to (a task with a large baseFile).
local function request_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file()
  if not path then return nil end
  local f = io.open(path, "rb")   -- a local file nginx just wrote: fast, no network
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

function _M.update()
  local body = request_body()
  if not body then
    return reply(400, { ok = false, error = { message = "send the task as a JSON body (at most 16 MB)" } })
  end
  local task = cjson.decode(body)
  if type(task) ~= "table" then
    return reply(400, { ok = false, error = { message = "the body is not a JSON object" } })
  end
  local c, err = get_client()
  if not c then return reply(500, { ok = false, error = { kind = err.kind, message = err.message } }) end
  local res
  res, err = c:recall_update(task)
  if res then
    return reply(200, { ok = true, code = res.code, message = res.message, attempts = res.attempts })
  end
  return reply(STATUS[err.kind] or 502, { ok = false, error = {
    kind = err.kind, code = err.code, message = err.message, retryable = err.retryable,
    attempts = err.attempts, errors = err.errors, reason = err.reason,
  } })
end

return _M
