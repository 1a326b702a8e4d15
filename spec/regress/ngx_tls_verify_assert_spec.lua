-- Regression: Debian's lua-resty-core 0.1.25 reports a certificate that fails verification,
-- when the handshake completes without yielding (fast, on loopback), by an assertion raised
-- inside sock:sslhandshake() (reused_session = nil), and with reused_session = false by
-- returning true. The ngx transport once took the raise for a transport crash ("other"), and
-- would have taken the `true` for a verified peer. Every refusal must say "tls", every time.
local cjson   = require "cjson"
local sandbox = require "support.sandbox"
local nginx   = require "support.nginx"

describe("regress: ngx TLS verification failures", function()
  local sb, srv
  setup(function()
    sb = sandbox.start{}
    srv = nginx.start{ http = "lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;", server = [[
      location /case/ { content_by_lua_block { require("support.ngx_cases").run() } }
    ]] }
  end)
  teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)

  it("are refused as tls in 25 handshakes out of 25, none sent", function()
    local url = "/case/update?max_retries=0&key=" .. sb.api_key .. "&secret=" .. sb.api_secret
      .. "&base=" .. sb.https_url:gsub(":", "%%3A"):gsub("/", "%%2F")
    for i = 1, 25 do
      local status, body = srv:get(url)
      assert.equal(200, status, body)
      local r = cjson.decode(body)
      assert.is_false(r.ok, "handshake " .. i .. " passed verification")
      assert.equal("tls", r.reason, "handshake " .. i .. ": " .. tostring(r.message))
      assert.is_false(r.sent)
    end
    assert.equal(0, sb:stats().requests)
  end)
end)
