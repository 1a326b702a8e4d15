-- Private to lua-itnio's test kit. The sandbox's nginx replies, for the handler and the
-- control plane alike: one whole response with a Content-Length, and the request's body.
local ngx = ngx

local type, pairs = type, pairs
local lower = string.lower
local io_open = io.open

local M = {}

local JSON_CT = "application/json;charset=UTF-8"

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
function M.send(status, body, ctype, headers)
  ngx.status = status
  ngx.header["Content-Type"] = ctype or JSON_CT
  ngx.header["Content-Length"] = #body
  set_headers(headers)
  ngx.print(body)
  return ngx.exit(ngx.HTTP_OK)
end

function M.read_body()
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

return M
