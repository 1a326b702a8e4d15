--- The libcurl transport (the default outside nginx): one easy handle per client, so
-- consecutive calls ride one keep-alive connection. libcurl itself resends a request
-- once on a fresh connection when a reused one turns out closed before any answer.
local core = require "itnio.core"

local pairs, sort = pairs, table.sort

local _M = {}

_M.default_user_agent = "lua-itnio/" .. core._VERSION .. " libcurl/" .. core.curl_version()

--- The options of a libcurl handle (http_new, multi_new) from the client's transport options:
-- cafile, capath, proxy, user_agent, max_body, insecure (exactly true turns verification off).
function _M.handle_opts(opts)
  return {
    cafile = opts.cafile, capath = opts.capath, proxy = opts.proxy, max_body = opts.max_body,
    user_agent = opts.user_agent or _M.default_user_agent, insecure = opts.insecure == true,
  }
end

--- _M.new(opts) -> transport function, handle (opts: see handle_opts). Its answers carry the
-- raw header block as `head` (parsed only when the client needs a header), not `headers`.
function _M.new(opts)
  local h = core.http_new(_M.handle_opts(opts))
  local function transport(req)
    local lines = req.lines   -- the client's own requests carry their header lines ready
    if not lines then
      lines = {}
      for name, value in pairs(req.headers) do lines[#lines + 1] = name .. ": " .. value end
      sort(lines)
    end
    local status, head, body, reused = h:perform(req.method, req.url, lines, req.body,
                                                 req.timeout, req.connect_timeout)
    if not status then return nil, head end
    return { status = status, head = head, body = body, reused = reused }
  end
  return transport, h
end

return _M
