-- The client end to end against the sandbox (nginx on loopback, real sockets, HTTP and HTTPS).
-- Tests tagged #timing assert bounds on elapsed time; `make valgrind` leaves them out.
local itnio   = require "itnio"
local errors  = require "itnio.errors"
local core    = require "itnio.core"
local cjson   = require "cjson"
local sandbox = require "support.sandbox"
local fx      = require "support.fixtures"
local dump    = fx.dump

local function task(over) return sandbox.task("Hello from the spec", over) end
local function client(sb, over) return sb:client(over) end

describe("itnio.new", function()
  local good = { api_key = "key123", api_secret = "secret456" }
  local function with(over)
    local o = {}
    for k, v in pairs(good) do o[k] = v end
    for k, v in pairs(over) do o[k] = v end
    return o
  end
  local refused = {
    { "no api_key",            { api_key = false },               "api_key" },
    { "empty api_key",         { api_key = "" },                  "api_key" },
    { "no secret",             { api_secret = false },            "api_secret" },
    { "numeric secret",        { api_secret = 1234 },             "api_secret" },
    { "CR LF in api_key",      { api_key = "k\r\nX-Evil: 1" },    "control" },
    { "LF in user_agent",      { user_agent = "ua\nX: y" },       "control" },
    { "plain http to a host",  { base_url = "http://example.com" }, "allow_http" },
    { "ftp base_url",          { base_url = "ftp://example.com" }, "http or https" },
    { "base_url with query",   { base_url = "https://h/?a=1" },   "query" },
    { "bad port",              { base_url = "https://h:70000" },  "port" },
    { "insecure as string",    { insecure = "yes" },              "insecure" },
    { "logger not a function", { logger = "print" },              "logger" },
    { "unknown transport",     { transport = "socket" },          "transport" },
    { "zero timeout",          { timeout = 0 },                   "timeout" },
    { "NaN timeout",           { timeout = 0 / 0 },               "timeout" },
    { "fractional retries",    { max_retries = 1.5 },             "max_retries" },
  }
  for _, row in ipairs(refused) do
    it("refuses " .. row[1] .. " with a ConfigError", function()
      local o = with(row[2])
      for k, v in pairs(o) do if v == false then o[k] = nil end end
      local c, err = itnio.new(o)
      assert.is_nil(c)
      assert.is_true(errors.is(err, errors.ConfigError))
      assert.truthy(tostring(err):find(row[3], 1, true), tostring(err))
      assert.is_nil(tostring(err):find("secret456", 1, true))
    end)
  end

  it("raises when opts is not a table (a programming error)", function()
    assert.has_error(function() itnio.new("key") end)
  end)

  it("accepts plain http to loopback, and to any host with allow_http", function()
    assert.truthy(itnio.new(with{ base_url = "http://127.0.0.1:8080" }))
    assert.truthy(itnio.new(with{ base_url = "http://localhost" }))
    assert.truthy(itnio.new(with{ base_url = "http://[::1]:9" }))
    assert.truthy(itnio.new(with{ base_url = "http://example.com", allow_http = true }))
  end)

  it("builds the vendor URL under the base URL, with or without a trailing slash", function()
    assert.equal("https://api.itniotech.com/voice/recallFlow/update", itnio.new(good).urls.recall_update)
    assert.equal("https://h:8443/p/voice/recallFlow/update",
                 itnio.new(with{ base_url = "https://h:8443/p/" }).urls.recall_update)
  end)

  it("shows the base URL and three characters of the key, never the secret", function()
    local c = itnio.new(good)
    local s = tostring(c)
    assert.truthy(s:find("https://api.itniotech.com", 1, true))
    assert.truthy(s:find("key", 1, true))
    assert.is_nil(s:find("key123", 1, true))
    assert.is_nil(dump(c):find("secret456", 1, true))
  end)

  it("does not mutate the caller's options", function()
    local o = with{}
    itnio.new(o)
    assert.same(with{}, o)
  end)
end)

describe("client:prepare_recall_update (dry run)", function()
  local c = assert(itnio.new{ api_key = "key123", api_secret = "secret456" })

  it("returns the request with the Sign redacted and the core's body", function()
    local req = assert(c:prepare_recall_update(task()))
    assert.equal("POST", req.method)
    assert.equal("https://api.itniotech.com/voice/recallFlow/update", req.url)
    assert.equal("<redacted>", req.headers.Sign)
    assert.equal("key123", req.headers["Api-Key"])
    assert.equal("application/json;charset=UTF-8", req.headers["Content-Type"])
    assert.truthy(req.headers.Timestamp:match("^%d+$"))
    assert.equal(core.encode("recall_update", task()), req.body)
    assert.is_nil(dump(req):find("secret456", 1, true))
    local real = core.sign("key123", "secret456", req.headers.Timestamp)
    assert.is_nil(dump(req):find(real, 1, true))
  end)

  it("returns a ValidationError listing every broken rule", function()
    local req, err = c:prepare_recall_update(task{ keyId = 0, recallNum = 11 })
    assert.is_nil(req)
    assert.is_true(errors.is(err, errors.ValidationError))
    assert.equal(2, #err.errors)
    assert.truthy(fx.find_error(err.errors, "T1", "keyId"))
    assert.truthy(fx.find_error(err.errors, "T3", "recallNum"))
    assert.equal(0, err.attempts)
    assert.is_false(err.retryable)
    assert.truthy(tostring(err):find("T1", 1, true))
    assert.is_nil(tostring(err):find("\n", 1, true))
  end)

  it("raises when the task is not a table", function()
    assert.has_error(function() c:prepare_recall_update("task") end)
    assert.has_error(function() c:recall_update(42) end)
  end)
end)

describe("the client against the sandbox", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("updates a Pending task over HTTP, and the stored task is what was sent", function()
    local t = task()
    local res, err = client(sb):recall_update(t)
    assert.is_nil(err)
    assert.equal(0, res.code)
    assert.equal("success", res.message)
    assert.is_nil(res.data)
    assert.equal(200, res.http_status)
    assert.equal(1, res.attempts)
    local stored = sb:task(299)
    assert.equal(1, stored.updates)
    assert.same(cjson.decode(core.encode("recall_update", t)), stored.task)
  end)

  it("sends a 10 MB baseFile whole #big", function()
    local node = { source = 2, uploadName = "big-file.wav", baseFile = string.rep("QUJD", 2621440),
                   hangUpSms = 0, toSeat = 0 }
    local res, err = client(sb, { timeout = 30 }):recall_update(task{ nodeList = { node } })
    assert.is_nil(err)
    assert.equal(0, res.code)
    assert.equal(10485760, #sb:task(299).task.nodeList[1].baseFile)
  end)

  it("rides one keep-alive connection for consecutive calls", function()
    local c = client(sb)
    for _ = 1, 3 do assert(c:recall_update(task())) end
    local st = sb:stats()
    assert.equal(3, st.requests)
    assert.equal(1, st.connections)
  end)

  it("sends nothing for an invalid task", function()
    local res, err = client(sb):recall_update(task{ recallType = 7 })
    assert.is_nil(res)
    assert.equal("ValidationError", err.kind)
    assert.equal(0, sb:stats().requests)
  end)

  describe("maps each answer to its error class", function()
    it("AuthError (-1) for a wrong secret, not retried", function()
      local res, err = client(sb, { api_secret = "not-the-secret", max_retries = 2 }):recall_update(task())
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.AuthError))
      assert.equal(-1, err.code)
      assert.equal(1, err.attempts)
      assert.is_false(err.retryable)
      assert.equal(1, sb:stats().requests)
    end)

    it("ParameterError (-22) for a task that is not Pending", function()
      local res, err = client(sb):recall_update(task{ keyId = 300 })
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.ParameterError))
      assert.equal(-22, err.code)
      assert.truthy(err.message:find("Pending", 1, true))
    end)

    it("SystemError (-18) is retried, max_retries more times", function()
      sb:fault{ count = 5, kind = "code", code = -18 }
      local res, err = client(sb, { max_retries = 2 }):recall_update(task())
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.SystemError))
      assert.is_true(err.retryable)
      assert.equal(3, err.attempts)
      assert.equal(3, sb:stats().requests)
    end)

    it("ApiError keeps an unknown code and the server's message", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = '{"code":-99,"msg":"quota gone"}' }
      local _, err = client(sb):recall_update(task())
      assert.is_true(errors.is(err, errors.ApiError))
      assert.equal(-99, err.code)
      assert.equal("quota gone", err.message)
    end)

    it("HttpError for a 500, retried, then given up", function()
      sb:fault{ count = 3, kind = "status", status = 500 }
      local _, err = client(sb, { max_retries = 2 }):recall_update(task())
      assert.is_true(errors.is(err, errors.HttpError))
      assert.equal(500, err.http_status)
      assert.equal(3, err.attempts)
      assert.equal(3, sb:stats().requests)
    end)

    it("DecodeError for an answer that is not JSON", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = "<html>oops</html>" }
      local _, err = client(sb):recall_update(task())
      assert.is_true(errors.is(err, errors.DecodeError))
      assert.equal(1, err.attempts)
    end)

    it("DecodeError for JSON without a status code", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = '{"msg":"success"}' }
      local _, err = client(sb):recall_update(task())
      assert.is_true(errors.is(err, errors.DecodeError))
    end)

    it("TimestampExpiredError (-16) when the fixed timestamp is refused again", function()
      sb:fault{ count = 2, kind = "code", code = -16 }
      local _, err = client(sb):recall_update(task())
      assert.is_true(errors.is(err, errors.TimestampExpiredError))
      assert.equal(2, err.attempts)
    end)

    it("TransportError (connect) for a closed port, said not sent", function()
      local c = assert(itnio.new{ api_key = "k", api_secret = "s", base_url = "http://127.0.0.1:9",
                                  max_retries = 1, backoff_base = 0.01 })
      local _, err = c:recall_update(task())
      assert.is_true(errors.is(err, errors.TransportError))
      assert.equal("connect", err.reason)
      assert.is_false(err.sent)
      assert.is_true(err.retryable)
      assert.equal(2, err.attempts)
    end)
  end)

  describe("reads every documented form of the answer", function()
    local forms = {
      { '{"code":"0","reason":"ok"}',           0,  "ok" },
      { '{"status":0,"msg":"done","data":{}}',  0,  "done" },
      { '{"status":"0"}',                       0,  "success" },
      { '{"code":"-1","reason":"bad sign"}',    -1, "bad sign" },
      { '{"code":-22,"message":"nope"}',        -22, "nope" },
    }
    for _, f in ipairs(forms) do
      it(f[1], function()
        sb:fault{ count = 1, kind = "answer", status = 200, body = f[1] }
        local res, err = client(sb):recall_update(task())
        if f[2] == 0 then
          assert.is_nil(err)
          assert.equal(0, res.code)
          assert.equal(f[3], res.message)
        else
          assert.is_nil(res)
          assert.equal(f[2], err.code)
          assert.equal(f[3], err.message)
        end
      end)
    end
  end)

  describe("retries", function()
    it("retries 503s and succeeds, counted by the sandbox", function()
      sb:fault{ count = 2, kind = "status", status = 503 }
      local res, err = client(sb, { max_retries = 2 }):recall_update(task())
      assert.is_nil(err)
      assert.equal(3, res.attempts)
      assert.equal(3, sb:stats().requests)
      assert.equal(1, sb:stats().accepted)
    end)

    it("honours Retry-After #timing", function()
      sb:fault{ count = 1, kind = "status", status = 503, retry_after = 1 }
      local t0 = core.now()
      local res = assert(client(sb):recall_update(task()))
      local took = core.now() - t0
      assert.equal(2, res.attempts)
      assert.is_true(took >= 0.95, "took " .. took)
    end)

    it("gives up when Retry-After is longer than max_retry_after #timing", function()
      sb:fault{ count = 1, kind = "status", status = 429, retry_after = 120 }
      local t0 = core.now()
      local _, err = client(sb, { max_retry_after = 5 }):recall_update(task())
      assert.equal(429, err.http_status)
      assert.equal(120, err.retry_after)
      assert.equal(1, err.attempts)
      assert.is_true(core.now() - t0 < 1)
    end)

    it("never sleeps past the deadline #timing", function()
      sb:fault{ count = 5, kind = "status", status = 503, retry_after = 2 }
      local t0 = core.now()
      local _, err = client(sb, { deadline = 1 }):recall_update(task())
      local took = core.now() - t0
      assert.equal(503, err.http_status)
      assert.truthy(err.message:find("deadline", 1, true))
      assert.is_true(took < 1.2, "took " .. took)
    end)

    it("never retries a refused parameter", function()
      local _, err = client(sb, { max_retries = 3 }):recall_update(task{ keyId = 300 })
      assert.equal(-22, err.code)
      assert.equal(1, sb:stats().requests)
    end)

    it("resends once on a fresh connection when a reused one dies before any answer", function()
      local c = client(sb, { max_retries = 0 })
      assert(c:recall_update(task()))
      sb:fault{ count = 1, kind = "reset" }
      local res, err = c:recall_update(task())
      assert.is_nil(err)
      assert.equal(0, res.code)
      assert.equal(3, sb:stats().requests)
      assert.equal(2, sb:stats().connections)
    end)

    it("reports a reset on a fresh connection as a TransportError that may have been sent", function()
      sb:fault{ count = 1, kind = "reset" }
      local _, err = client(sb, { max_retries = 0 }):recall_update(task())
      assert.is_true(errors.is(err, errors.TransportError))
      assert.equal("reset", err.reason)
      assert.is_true(err.sent)
    end)

    it("fires the timeout within 20% of its setting #timing", function()
      sb:fault{ count = 1, kind = "delay", ms = 3000 }
      local t0 = core.now()
      local _, err = client(sb, { timeout = 1, max_retries = 0 }):recall_update(task())
      local took = core.now() - t0
      assert.equal("timeout", err.reason)
      assert.is_true(err.sent)
      assert.is_true(took >= 0.95 and took <= 1.2, "took " .. took)
    end)

    it("refuses a 2 MiB answer without retrying", function()
      sb:fault{ count = 1, kind = "answer", status = 200, body = string.rep("x", 2 * 1024 * 1024) }
      local _, err = client(sb, { max_retries = 2 }):recall_update(task())
      assert.is_true(errors.is(err, errors.TransportError))
      assert.equal("too_large", err.reason)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
    end)
  end)

  describe("logging", function()
    it("sees each attempt, and never the secret or the Sign", function()
      sb:fault{ count = 1, kind = "status", status = 503 }
      local lines = {}
      local c = client(sb, { logger = function(level, msg, fields)
        lines[#lines + 1] = { level = level, msg = msg, fields = fields }
      end })
      assert(c:recall_update(task()))
      assert.equal(2, #lines)
      assert.equal("warn", lines[1].level)
      assert.equal(503, lines[1].fields.status)
      assert.equal("HttpError", lines[1].fields.error_kind)
      assert.equal(1, lines[1].fields.attempt)
      assert.equal("info", lines[2].level)
      assert.equal(200, lines[2].fields.status)
      assert.equal(2, lines[2].fields.attempt)
      assert.equal("POST", lines[2].fields.method)
      assert.truthy(lines[2].fields.url:find("/voice/recallFlow/update", 1, true))
      assert.is_true(lines[2].fields.duration >= 0)
      local all = dump(lines)
      assert.is_nil(all:find(sb.api_secret, 1, true))
      assert.is_nil(all:find("Sign", 1, true))
    end)

    it("keeps the call alive when the logger raises", function()
      local c = client(sb, { logger = function() error("logger broke") end })
      assert(c:recall_update(task()))
    end)

    it("puts no secret in any error, even when the server echoes it", function()
      sb:fault{ count = 1, kind = "answer", status = 200,
                body = cjson.encode{ code = -1, msg = "bad secret " .. sb.api_secret } }
      local _, err = client(sb):recall_update(task())
      assert.equal(-1, err.code)
      assert.is_nil(dump(err):find(sb.api_secret, 1, true))
      assert.truthy(err.message:find("<redacted>", 1, true))
    end)

    it("keeps the secret and the Sign it made out of the client table, after calls too", function()
      local c = client(sb)
      assert(c:recall_update(task()))
      local job = assert(c:start_recall_update(task()))
      while c:poll(0.05) > 0 do end
      assert(job:result())
      local ts = c:prepare_recall_update(task()).headers.Timestamp
      local text = dump(c) .. dump(job)
      assert.is_nil(text:find(sb.api_secret, 1, true))
      for d = -1, 1 do
        assert.is_nil(text:find(core.sign(sb.api_key, sb.api_secret, tostring(tonumber(ts) + d)), 1, true))
      end
    end)
  end)
end)

describe("the failure contract at the edges", function()
  local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }
  local c = assert(itnio.new{ api_key = "key123", api_secret = "secret456",
                              transport = function() return { status = 200, body = '{"code":0}' } end })

  it("refuses transport = 'ngx' outside nginx with a ConfigError that says why", function()
    local made, err = itnio.new{ api_key = "key123", api_secret = "secret456", transport = "ngx" }
    assert.is_nil(made)
    assert.is_true(errors.is(err, errors.ConfigError))
    assert.truthy(tostring(err):find("OpenResty", 1, true), tostring(err))
  end)

  local bad = {
    { "opts that are not a table", "fast", "table expected" },
    { "a deadline that is not a number", { deadline = "5" }, "opts.deadline" },
    { "a deadline of 0", { deadline = 0 }, "opts.deadline" },
    { "a passthrough that is not a boolean", { passthrough = "yes" }, "opts.passthrough" },
  }
  for _, row in ipairs(bad) do
    for _, method in ipairs{ "recall_update", "prepare_recall_update", "start_recall_update" } do
      it(method .. " raises a clear argument error for " .. row[1], function()
        local ok, msg = pcall(c[method], c, TASK, row[2])
        assert.is_false(ok)
        msg = tostring(msg)
        assert.truthy(msg:find(method, 1, true), msg)
        assert.truthy(msg:find(row[3], 1, true), msg)
      end)
    end
  end

  it("a call after close returns a TransportError 'closed'", function()
    local closing = assert(itnio.new{ api_key = "key123", api_secret = "secret456" })
    closing:close()
    local res, err = closing:recall_update(TASK)
    assert.is_nil(res)
    assert.equal("closed", err.reason)
  end)
end)

describe("itnio.core's HTTP handle", function()
  local core_http = core.http_new{}

  it("parses a raw header block only when asked: lower-case names, repeats joined", function()
    local h = core.parse_headers("HTTP/1.1 503 Busy\r\nDate: Tue, 24 Nov 2026 07:00:00 GMT\r\n"
      .. "Retry-After:  7 \r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert.same({ date = "Tue, 24 Nov 2026 07:00:00 GMT", ["retry-after"] = "7", ["x-a"] = "1, 2" }, h)
    assert.same({}, core.parse_headers(""))
    assert.has_error(function() core.parse_headers(nil) end)
  end)

  it("sends each request's own header lines, also when the previous lines are kept", function()
    local sb = sandbox.start{}
    local ok, e = pcall(function()
      local h = core.http_new{}
      local url = sb.http_url .. "/voice/recallFlow/update"
      local body = assert(core.encode("recall_update", task()))
      local function lines(ts)
        return { "Content-Type: application/json;charset=UTF-8", "Api-Key: " .. sb.api_key,
                 "Timestamp: " .. ts, "Sign: " .. core.sign(sb.api_key, sb.api_secret, ts) }
      end
      local now = tostring(os.time())
      for _, l in ipairs{ lines(now), lines(now), lines("12"), lines(now), { "X-Only: 1" } } do
        local answer = assert(h:perform("POST", url, l, body, 5, 5))
        assert.equal(200, answer.status)
        local code = cjson.decode(answer.body).code
        if l[3] == "Timestamp: 12" then assert.equal(-16, code)
        elseif #l == 1 then assert.equal(-1, code)
        else assert.equal(0, code) end
      end
    end)
    sb:stop()
    assert(ok, e)
  end)

  it("refuses header lines with CR, LF or NUL before anything is sent (header injection)", function()
    for _, line in ipairs({ "X-A: 1\r\nX-Evil: 2", "X-A: 1\nX-Evil: 2", "X-A: 1\0X", "NoColon" }) do
      local ok, err = pcall(core_http.perform, core_http, "POST", "http://127.0.0.1:9/", { line }, "{}", 1, 1)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("header line", 1, true), tostring(err))
    end
  end)

  it("refuses a URL with white space and a method other than GET or POST", function()
    assert.has_error(function() core_http:perform("POST", "http://127.0.0.1:9/ x", {}, "", 1, 1) end)
    assert.has_error(function() core_http:perform("DELETE", "http://127.0.0.1:9/", {}, "", 1, 1) end)
  end)

  it("speaks only HTTP and HTTPS", function()
    local answer, err = core_http:perform("GET", "file:///etc/passwd", {}, nil, 1, 1)
    assert.is_nil(answer)
    assert.equal("other", err.reason)
    assert.is_false(err.sent)
  end)

  it("can be closed, twice, and is then refused", function()
    local h = core.http_new{}
    h:close()
    h:close()
    assert.equal("itnio.Http (closed)", tostring(h))
    assert.has_error(function() h:perform("GET", "http://127.0.0.1:9/", {}) end)
  end)

  it("refuses options of the wrong type or with CR/LF", function()
    assert.has_error(function() core.http_new{ cafile = 42 } end)
    assert.has_error(function() core.http_new{ user_agent = "ua\r\nX: y" } end)
    assert.has_error(function() core.http_new{ max_body = 0 } end)
  end)
end)

describe("a transport of the caller's own", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  it("gets {method, url, headers, body, timeout} and its answer is read like any other", function()
    local curl = require("itnio.internal.curl").new{}
    local seen
    local c = client(sb, { transport = function(req)
      seen = req
      local lines = {}
      for name, value in pairs(req.headers) do lines[#lines + 1] = name .. ": " .. value end
      return curl:send(req.method, req.url, lines, req.body, req.timeout, req.connect_timeout)
    end })
    local res = assert(c:recall_update(task()))
    assert.equal(0, res.code)
    assert.equal("POST", seen.method)
    assert.equal(sb.http_url .. "/voice/recallFlow/update", seen.url)
    assert.equal(core.sign(sb.api_key, sb.api_secret, seen.headers.Timestamp), seen.headers.Sign)
    assert.equal(core.encode("recall_update", task()), seen.body)
    assert.equal(10, seen.timeout)
    assert.equal("custom", c.transport_name)
  end)

  it("that raises gives a TransportError, not a raise", function()
    local c = client(sb, { max_retries = 0, transport = function() error("boom") end })
    local res, err = c:recall_update(task())
    assert.is_nil(res)
    assert.is_true(errors.is(err, errors.TransportError))
    assert.truthy(err.message:find("boom", 1, true))
  end)

  it("that answers nonsense gives a TransportError (protocol)", function()
    for _, bad in ipairs({ function() return "200 OK" end, function() return { status = "200" } end,
                           function() return nil, "plain string error" end }) do
      local _, err = client(sb, { max_retries = 0, transport = bad }):recall_update(task())
      assert.is_true(errors.is(err, errors.TransportError), tostring(err))
    end
  end)
end)

describe("the clock-skew fix", function()
  local sb
  setup(function() sb = sandbox.start{ skew = 3600 } end)
  teardown(function() if sb then sb:stop() end end)

  it("learns the server's clock from Date on -16, resends at once, and keeps the offset", function()
    local c = client(sb, { max_retries = 0 })
    local res, err = c:recall_update(task())
    assert.is_nil(err)
    assert.equal(2, res.attempts)
    assert.is_true(math.abs(c.state:offset() - 3600) <= 2, "offset " .. tostring(c.state:offset()))
    res = assert(c:recall_update(task()))
    assert.equal(1, res.attempts)
  end)
end)

describe("the IP allow-list", function()
  local sb
  setup(function() sb = sandbox.start{ allow_ip = "10.9.9.9" } end)
  teardown(function() if sb then sb:stop() end end)

  it("maps -2 to IpLimitError, not retried", function()
    local _, err = client(sb, { max_retries = 2 }):recall_update(task())
    assert.is_true(errors.is(err, errors.IpLimitError))
    assert.equal(-2, err.code)
    assert.equal(1, err.attempts)
  end)
end)

describe("TLS", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  it("is refused without the sandbox's CA", function()
    -- generous timeouts: the handshake loads the system's CA bundle, seconds under valgrind
    local _, err = client(sb, { base_url = sb.https_url, max_retries = 0, connect_timeout = 60,
                                timeout = 60 }):recall_update(task())
    assert.is_true(errors.is(err, errors.TransportError))
    assert.equal("tls", err.reason)
    assert.is_false(err.retryable)
  end)

  it("is accepted with cafile", function()
    local res = assert(client(sb, { base_url = sb.https_url, cafile = sb.cafile }):recall_update(task()))
    assert.equal(0, res.code)
  end)

  it("is skipped only with insecure = true, which warns through the logger", function()
    local warned = {}
    local c = client(sb, { base_url = sb.https_url, insecure = true, logger = function(level, msg)
      if level == "warn" then warned[#warned + 1] = msg end
    end })
    assert.equal(1, #warned)
    assert.truthy(warned[1]:find("TLS verification is OFF", 1, true))
    local res = assert(c:recall_update(task()))
    assert.equal(0, res.code)
  end)
end)
