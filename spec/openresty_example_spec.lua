-- examples/openresty as written (a copy of its nginx.conf with the port, paths and CA of this
-- test run put in), against a sandbox that holds every update 200 ms: 50 concurrent requests
-- on one worker overlap with the ngx transport, and queue up behind curl's blocking call.
local cjson   = require "cjson"
local socket  = require "socket"
local sandbox = require "support.sandbox"
local nginx   = require "support.nginx"

local ROOT = sandbox.root
local TASK = cjson.encode{ keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
  nodeList = { { source = 1, voiceFileId = "hello.wav", hangUpSms = 0, toSeat = 0 } } }

local function example_conf(cafile)
  local f = assert(io.open(ROOT .. "/examples/openresty/nginx.conf", "rb"))
  local conf = f:read("*a")
  f:close()
  local function sub(from, to)
    local n
    conf, n = conf:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%")))
    assert(n > 0, "the example's nginx.conf no longer has " .. from)
  end
  sub("listen 127.0.0.1:8080;", "listen 127.0.0.1:$PORT;")
  sub("$prefix/../../", "$REPO/")
  sub("$prefix/?.lua", "$REPO/examples/openresty/?.lua")
  sub("/etc/ssl/certs/ca-certificates.crt", cafile)
  -- root's workers would run as nobody, who may not read a private checkout
  return (sandbox.run("id -u"):match("^0%s*$") and "user root root;\n" or "") .. conf
end

-- n POSTs (or GETs) at once with curl's --parallel; returns the status codes and the seconds.
local function parallel(n, url, body)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(body or "")
  f:close()
  local urls = {}
  for i = 1, n do urls[i] = sandbox.shell_quote(url) end
  local data = body and ("-H 'Content-Type: application/json' --data-binary @" .. path .. " ") or ""
  local t0 = socket.gettime()
  local out = sandbox.run("curl -s --parallel --parallel-immediate --parallel-max " .. n
    .. " --max-time 60 " .. data .. "-o /dev/null -w '%{http_code}\\n' " .. table.concat(urls, " "))
  local took = socket.gettime() - t0
  os.remove(path)
  local codes = {}
  for c in out:gmatch("(%d%d%d)\n") do codes[#codes + 1] = tonumber(c) end
  return codes, took, out
end

describe("examples/openresty", function()
  local sb, example, cases
  setup(function()
    sb = sandbox.start{ hold_ms = 200 }
    example = nginx.start{ conf = example_conf(sb.cafile), env = {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.https_url } }
    cases = nginx.start{ server = [[
      location /case/ { content_by_lua_block { require("support.ngx_cases").run() } }
    ]] }
  end)
  teardown(function()
    for _, s in ipairs({ example, cases, sb }) do if s then s:stop() end end
  end)
  before_each(function() sb:reset() end)

  it("updates a task posted as JSON, over HTTPS verified with lua_ssl_trusted_certificate", function()
    local status, body = example:get("/recall-task", "POST", TASK, { ["Content-Type"] = "application/json" })
    assert.equal(200, status, body)
    assert.equal('{"ok":true,"code":0,"message":"success","attempts":1}\n', body)   -- (its keys in order)
    assert.equal("hello.wav", sb:task(299).task.nodeList[1].voiceFileId)
  end)

  it("answers 422 with the broken rules for an invalid task, sending nothing", function()
    local status, body = example:get("/recall-task", "POST", '{"keyId":0}',
                                     { ["Content-Type"] = "application/json" })
    assert.equal(422, status)
    local r = cjson.decode(body)
    assert.equal("ValidationError", r.error.kind)
    assert.is_true(#r.error.errors >= 4)
    -- every answer in one key order: a second one is the same bytes
    assert.truthy(body:find('^{"ok":false,"error":{"kind":"ValidationError","message":'), body)
    assert.truthy(body:find('"errors":[{"rule":"T1","field":"keyId","message":', 1, true), body)
    assert.equal(body, select(2, example:get("/recall-task", "POST", '{"keyId":0}',
                                             { ["Content-Type"] = "application/json" })))
    assert.equal(0, sb:stats().requests)
  end)

  it("updates a task with a 5 MB baseFile (a body nginx spools to a file)", function()
    local base64 = string.rep("QUJD", 5 * 1024 * 1024 / 4)
    local big = cjson.encode{ keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
      nodeList = { { source = 2, uploadName = "big-greeting.wav", baseFile = base64, hangUpSms = 0,
                     toSeat = 0 } } }
    assert.is_true(#big > 5 * 1024 * 1024)
    local status, body = example:get("/recall-task", "POST", big, { ["Content-Type"] = "application/json" })
    assert.equal(200, status, body)
    assert.is_true(cjson.decode(body).ok, body)
    local stored = sb:task(299).task.nodeList[1]
    assert.equal("big-greeting.wav", stored.uploadName)
    assert.equal(#base64, #stored.baseFile)
  end)

  it("answers 400 for a body that is not JSON", function()
    local status = example:get("/recall-task", "POST", "{nope", { ["Content-Type"] = "application/json" })
    assert.equal(400, status)
  end)

  it("keeps the account's state in Redis with ITNIO_STORE, the password nowhere in its log", function()
    local r = require("support.redis").start{ password = "example-St0re-pw" }
    local with = nginx.start{ conf = example_conf(sb.cafile), env = {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.https_url,
      ITNIO_STORE = r.url } }
    local ok, err = pcall(function()
      local status, body = with:get("/recall-task", "POST", TASK, { ["Content-Type"] = "application/json" })
      assert.equal(200, status, body)
      assert.is_true(cjson.decode(body).ok)
      local n = 0
      for k in pairs(r:keys()) do
        assert.truthy(k:find("^itnio:{%x+}:"), k)
        n = n + 1
      end
      assert.is_true(n >= 1, "nothing in the store")
      r:kill()   -- and without it: the call goes on, the log says so once, without the password
      status, body = with:get("/recall-task", "POST", TASK, { ["Content-Type"] = "application/json" })
      assert.equal(200, status, body)
      local log = with:error_log()
      assert.truthy(log:find("is away", 1, true), log)
      assert.is_nil(log:find("example-St0re-pw", 1, true))
      assert.is_nil(log:find(sb.api_secret, 1, true))
    end)
    with:stop()
    r:stop()
    assert(ok, err)
  end)

  it("never shows the secret in what it answers or logs", function()
    example:get("/recall-task", "POST", '{"keyId":300,"recallType":0,"recallInterval":1,"recallNum":1}')
    assert.is_nil(example:error_log():find(sb.api_secret, 1, true))
  end)

  -- /metrics as numbers: { ["itnio_calls_total{...}"] = n, ... }, and the text.
  local function scrape()
    local status, body, headers = example:get("/metrics")
    assert.equal(200, status, body)
    assert.matches("^text/plain; version=0.0.4", headers["content-type"])
    local m = {}
    for name, v in body:gmatch("\n?([%w_]+%b{}) ([%d.e+-]+)") do m[name] = tonumber(v) end
    return m, body
  end

  it("counts every call on /metrics, by outcome, with a duration histogram (Prometheus text)", function()
    local before = scrape()
    local function post(body)
      return example:get("/recall-task", "POST", body, { ["Content-Type"] = "application/json" })
    end
    for _ = 1, 3 do assert.equal(200, (post(TASK))) end
    assert.equal(422, (post('{"keyId":300,"recallType":0,"recallInterval":1,"recallNum":1,'
      .. '"nodeList":[{"source":1,"voiceFileId":"x.wav",'
      .. '"hangUpSms":0,"toSeat":0}]}')))   -- -22: 300 is Running
    assert.equal(422, (post('{"keyId":0}')))   -- breaks rules: counted, nothing sent
    sb:fault{ kind = "status", status = 500, count = 3 }
    assert.equal(502, (post(TASK)))            -- three attempts, then HttpError
    local after, text = scrape()
    local function delta(name) return (after[name] or 0) - (before[name] or 0) end
    local ep = 'endpoint="recall_update"'
    assert.equal(3, delta("itnio_calls_total{" .. ep .. ',outcome="ok"}'), text)
    assert.equal(1, delta("itnio_calls_total{" .. ep .. ',outcome="ParameterError"}'), text)
    assert.equal(1, delta("itnio_calls_total{" .. ep .. ',outcome="ValidationError"}'), text)
    assert.equal(1, delta("itnio_calls_total{" .. ep .. ',outcome="HttpError"}'), text)
    assert.equal(6, delta("itnio_call_duration_seconds_count{" .. ep .. "}"), text)
    assert.equal(6, delta("itnio_call_duration_seconds_bucket{" .. ep .. ',le="+Inf"}'), text)
    -- the sandbox holds each answer 200 ms: five calls reached it, one (the broken task) did not
    assert.equal(1, delta("itnio_call_duration_seconds_bucket{" .. ep .. ',le="0.1"}'), text)
    assert.is_true(delta("itnio_call_duration_seconds_sum{" .. ep .. "}") >= 5 * 0.2)
    assert.matches("# TYPE itnio_calls_total counter", text, 1, true)
    assert.matches("# TYPE itnio_call_duration_seconds histogram", text, 1, true)
    -- and Prometheus' own checker takes it (Debian's prometheus package: promtool)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    local out, ok = sandbox.run("promtool check metrics < " .. sandbox.shell_quote(path))
    os.remove(path)
    assert(ok, "promtool check metrics: " .. out .. "\n" .. text)
    assert.equal("", out)   -- (no lint remark either)
  end)

  it("overlaps 50 concurrent updates on one worker: well under 50 x 200 ms #timing", function()
    local codes, took, out = parallel(50, example.url .. "/recall-task", TASK)
    assert.equal(50, #codes, out)
    for i = 1, 50 do assert.equal(200, codes[i]) end
    assert.equal(50, sb:stats().accepted)
    assert.is_true(took < 2, "50 updates took " .. took .. " s")
  end)

  it("queues them behind each other with the curl transport (10 x 200 ms) #timing", function()
    local url = cases.url .. "/case/update?transport=curl&key=" .. sb.api_key .. "&secret="
      .. sb.api_secret .. "&base=" .. sb.http_url:gsub(":", "%%3A"):gsub("/", "%%2F")
    local codes, took, out = parallel(10, url)
    assert.equal(10, #codes, out)
    assert.equal(10, sb:stats().accepted)
    assert.is_true(took >= 2, "10 blocking updates took only " .. took .. " s")
  end)
end)
