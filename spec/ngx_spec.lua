-- The client inside nginx workers: the cosocket transport against the sandbox, over real
-- sockets, HTTP and HTTPS (nginx's lua_ssl_trusted_certificate), and the OpenResty example.
local cjson   = require "cjson"
local socket  = require "socket"
local sandbox = require "support.sandbox"
local nginx   = require "support.nginx"

local query = nginx.query

describe("the ngx transport inside nginx", function()
  local sb, srv
  local function call(case, over)
    local args = { base = sb.http_url, key = sb.api_key, secret = sb.api_secret }
    for k, v in pairs(over or {}) do args[k] = v end
    local status, body = srv:get("/case/" .. case .. "?" .. query(args))
    assert.equal(200, status, body)
    return cjson.decode(body)
  end

  setup(function()
    sb = sandbox.start{}
    srv = nginx.start{
      http = "lua_shared_dict itnio_spec 1m;\n"
        .. "lua_ssl_trusted_certificate " .. sb.cafile .. ";\nlua_ssl_verify_depth 2;",
      server = [[
        location /case/ { content_by_lua_block { require("support.ngx_cases").run() } }
        location = /untrusted {
          lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
          content_by_lua_block { ngx.req.set_uri("/case/update"); require("support.ngx_cases").run() }
        }
        location = /phase {
          content_by_lua_block { ngx.say("body") }
          header_filter_by_lua_block { require("support.ngx_cases").header_filter() }
        }
      ]],
    }
  end)
  teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
  end)
  before_each(function() sb:reset() end)

  it("updates a task, with the ngx transport chosen by itself", function()
    local r = call("update")
    assert.is_true(r.ok, r.message)
    assert.equal(0, r.code)
    assert.equal("ngx", r.transport)
    assert.equal(1, r.attempts)
    assert.equal("From inside nginx", sb:task(299).task.nodeList[1].text)
  end)

  it("loads nothing of the test kit or the command line with a production require", function()
    local r = call("loaded")
    assert.is_true(r.ok, r.err)
    local names = table.concat(r.modules, " ")
    assert.truthy(names:find("itnio.internal.cosocket", 1, true), names)
    assert.is_nil(names:find("itnio.testing", 1, true), names)
    assert.is_nil(names:find("itnio.cli", 1, true), names)
  end)

  it("sends the method the request names (GET), and refuses one it does not speak", function()
    local r = call("method")
    assert.equal(200, r.status, r.err)
    assert.truthy(r.body:find('"requests"', 1, true), r.body)
    assert.truthy(r.put and r.put:find("GET or POST", 1, true), r.put)
  end)

  it("uses curl inside nginx only when asked", function()
    local r = call("update", { transport = "curl" })
    assert.is_true(r.ok, r.message)
    assert.equal("curl", r.transport)
  end)

  it("reuses one keep-alive connection across calls and requests", function()
    local rs = call("several", { n = 3 })
    for i = 1, 3 do assert.is_true(rs[i].ok, rs[i].message) end
    assert.is_true(call("update").ok)
    local st = sb:stats()
    assert.equal(4, st.requests)
    assert.equal(1, st.connections)
  end)

  it("works from an ngx.timer.at callback", function()
    local r = call("timer")
    assert.is_true(r.ok, r.message)
    assert.equal("ngx", r.transport)
  end)

  it("refuses a phase without cosockets with an error that says where to move the call", function()
    local status, body, headers = srv:get("/phase?" .. query{ base = sb.http_url, key = sb.api_key,
                                                              secret = sb.api_secret })
    assert.equal(200, status)
    assert.equal("body\n", body)
    local result = headers["x-itnio-result"]
    assert.truthy(result:find("^TransportError|phase|"), result)
    assert.truthy(result:find("header_filter", 1, true), result)
    assert.truthy(result:find("ngx.timer.at", 1, true), result)
    assert.equal(0, sb:stats().requests)
  end)

  it("checks the phase on every call: a client chosen in content is refused in a filter", function()
    assert.is_true(call("shared").ok)
    local _, _, headers = srv:get("/phase?shared=1&" .. query{ base = sb.http_url, key = sb.api_key,
                                                               secret = sb.api_secret })
    assert.truthy(headers["x-itnio-result"]:find("^TransportError|phase|"), headers["x-itnio-result"])
    assert.equal(1, sb:stats().requests)
  end)

  describe("maps each answer to its error class", function()
    it("AuthError for a wrong secret", function()
      local r = call("update", { secret = "wrong", max_retries = 2 })
      assert.equal("AuthError", r.kind)
      assert.equal(-1, r.code)
      assert.equal(1, r.attempts)
    end)
    it("ParameterError for a task that is not Pending", function()
      local r = call("update", { keyId = 300 })
      assert.equal("ParameterError", r.kind)
      assert.equal(-22, r.code)
    end)
    it("SystemError, retried", function()
      sb:fault{ count = 5, kind = "code", code = -18 }
      local r = call("update", { max_retries = 2 })
      assert.equal("SystemError", r.kind)
      assert.equal(3, r.attempts)
      assert.equal(3, sb:stats().requests)
    end)
    it("HttpError 503 retried, then success", function()
      sb:fault{ count = 2, kind = "status", status = 503 }
      local r = call("update", { max_retries = 2 })
      assert.is_true(r.ok, r.message)
      assert.equal(3, r.attempts)
    end)
    it("DecodeError for an answer that is not JSON", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = "not json" }
      assert.equal("DecodeError", call("update").kind)
    end)
    it("ApiError for an unknown code", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = '{"code":"-77","reason":"odd"}' }
      local r = call("update")
      assert.equal("ApiError", r.kind)
      assert.equal(-77, r.code)
      assert.equal("odd", r.message)
    end)
    it("TransportError (connect) for a closed port, not sent", function()
      local r = call("update", { base = "http://127.0.0.1:9", max_retries = 0 })
      assert.equal("TransportError", r.kind)
      assert.equal("connect", r.reason)
      assert.is_false(r.sent)
    end)
    it("TransportError (timeout) that fires within 20% of its setting #timing", function()
      sb:fault{ count = 1, kind = "delay", ms = 3000 }
      local t0 = socket.gettime()
      local r = call("update", { timeout = 1, max_retries = 0 })
      local took = socket.gettime() - t0
      assert.equal("timeout", r.reason)
      assert.is_true(r.sent)
      assert.is_true(took >= 0.95 and took < 1.2, "took " .. took)
    end)
    it("TransportError (reset) on a fresh connection, may have been sent", function()
      sb:fault{ count = 1, kind = "reset" }
      local r = call("update", { max_retries = 0 })
      assert.equal("reset", r.reason)
      assert.is_true(r.sent)
    end)
    it("TransportError (too_large) for a 2 MiB answer", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = string.rep("y", 2 * 1024 * 1024) }
      local r = call("update", { max_retries = 2 })
      assert.equal("too_large", r.reason)
      assert.equal(1, r.attempts)
    end)
  end)

  it("resends on a fresh connection when a pooled one died before any answer", function()
    assert.is_true(call("update").ok)
    sb:fault{ count = 1, kind = "reset" }
    local r = call("update", { max_retries = 0 })
    assert.is_true(r.ok, r.message)
    assert.equal(1, r.attempts)
    assert.equal(3, sb:stats().requests)
  end)

  describe("a rate limit (rate, burst)", function()
    it("paces calls with ngx.sleep: five at 10 a second take at least 0.4 s; "
      .. "waited is kept #timing", function()
      local r = call("several", { n = 5, rate = 10, took = 1 })
      assert.is_true(r.took >= 0.4 * 0.98, "took " .. r.took)
      local waited = 0
      for i, o in ipairs(r.results) do
        assert.is_true(o.ok, o.message)
        assert.is_number(o.waited)
        if i == 1 then assert.equal(0, o.waited) end
        waited = waited + o.waited
      end
      assert.is_true(waited > 0.2, "waited " .. waited)
    end)

    it("paces the batch on light threads, retries included #timing", function()
      sb:fault{ kind = "status", status = 503, count = 2 }
      local r = call("batch", { n = 8, concurrency = 4, rate = 20, max_retries = 2 })
      for _, o in ipairs(r.results) do
        assert.is_true(o.ok, o.message)
        assert.is_number(o.waited)
      end
      assert.equal(10, sb:stats().requests)
      assert.is_true(r.seconds >= 9 / 20 * 0.98, "took " .. r.seconds)
    end)
  end)

  describe("the batch on light threads", function()
    it("returns every outcome in order; a broken task is an entry, the others go", function()
      local r = call("batch", { n = 12, concurrency = 4, bad = 3 })
      assert.equal(12, #r.results)
      assert.equal(12, r.on_done_calls)
      assert.equal(12, #r.on_call)   -- on_call hears every task, the broken one too
      local by = {}
      for _, o in ipairs(r.on_call) do by[o] = (by[o] or 0) + 1 end
      assert.are.same({ ok = 11, ValidationError = 1 }, by)
      for i, o in ipairs(r.results) do
        if i == 3 then
          assert.equal("ValidationError", o.kind)
        else
          assert.is_true(o.ok, o.message)
          assert.equal("ngx", o.transport)
        end
      end
      assert.equal(11, sb:stats().accepted)
      assert.is_true(sb:stats().connections <= 4)
    end)

    it("stops retrying when the retry budget is spent", function()
      sb:fault{ count = 1000, kind = "status", status = 503 }
      local r = call("batch", { n = 20, concurrency = 5, max_retries = 3, retry_budget = 4 })
      for _, o in ipairs(r.results) do assert.equal("HttpError", o.kind) end
      assert.equal(24, sb:stats().requests)
    end)

    it("overlaps: 20 answers held 200 ms at concurrency 20 take far less than 4 s #timing", function()
      local slow = sandbox.start{ hold_ms = 200 }
      local ok, e = pcall(function()
        local r = call("batch", { base = slow.http_url, n = 20, concurrency = 20 })
        for _, o in ipairs(r.results) do assert.is_true(o.ok, o.message) end
        assert.is_true(r.seconds < 1.5, "took " .. r.seconds)
      end)
      slow:stop()
      assert(ok, e)
    end)
  end)

  describe("with a sandbox whose clock is an hour ahead", function()
    local skewed
    setup(function() skewed = sandbox.start{ skew = 3600 } end)
    teardown(function() if skewed then skewed:stop() end end)

    it("learns the offset from Date on -16 and resends at once", function()
      local r = call("update", { base = skewed.http_url, max_retries = 0 })
      assert.is_true(r.ok, r.message)
      assert.equal(2, r.attempts)
      assert.equal(2, skewed:stats().requests)
    end)

    it("maps a -16 that persists to TimestampExpiredError", function()
      skewed:reset()
      skewed:fault{ count = 2, kind = "code", code = -16 }
      local r = call("update", { base = skewed.http_url })
      assert.equal("TimestampExpiredError", r.kind)
      assert.equal(-16, r.code)
    end)
  end)

  describe("with a sandbox that allows another address only", function()
    local walled
    setup(function() walled = sandbox.start{ allow_ip = "10.9.9.9" } end)
    teardown(function() if walled then walled:stop() end end)

    it("maps -2 to IpLimitError, not retried", function()
      local r = call("update", { base = walled.http_url, max_retries = 2 })
      assert.equal("IpLimitError", r.kind)
      assert.equal(-2, r.code)
      assert.equal(1, r.attempts)
    end)
  end)

  describe("TLS", function()
    -- A sandbox of its own: pooled connections are keyed by scheme, host, port and whether
    -- they were verified, not by the trust store of the location that made them.
    local other
    setup(function() other = sandbox.start{} end)
    teardown(function() if other then other:stop() end end)

    it("verifies the sandbox against lua_ssl_trusted_certificate", function()
      local r = call("update", { base = sb.https_url })
      assert.is_true(r.ok, r.message)
      assert.equal("ngx", r.transport)
    end)
    it("refuses the sandbox's certificate where nginx does not trust its CA", function()
      local status, body = srv:get("/untrusted?" .. query{ base = other.https_url, key = other.api_key,
                                                           secret = other.api_secret, max_retries = 0 })
      assert.equal(200, status, body)
      local r = cjson.decode(body)
      assert.equal("TransportError", r.kind)
      assert.equal("tls", r.reason, r.message)
      assert.is_false(r.retryable)
    end)
    it("skips verification only with insecure = true", function()
      local status, body = srv:get("/untrusted?" .. query{ base = other.https_url, key = other.api_key,
                                                           secret = other.api_secret, insecure = 1 })
      assert.equal(200, status)
      assert.is_true(cjson.decode(body).ok)
    end)
  end)
end)
