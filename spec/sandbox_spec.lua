-- The sandbox itself (bin/itnio-sandbox + lua/itnio/sandbox.lua in nginx): what it answers,
-- its control endpoints and faults, its clock, TLS and process handling. Talks to it over
-- real sockets with LuaSocket (and the curl command line for TLS). Lua 5.4.
local sandbox = require "support.sandbox"
local core = require "itnio.core"
local cjson = require "cjson"
local socket = require "socket"

local SUCCESS = '{"code":0,"msg":"success","data":null}'
local UPDATE = "/voice/recallFlow/update"

-- The vendor's own example body (from its page for this endpoint), nulls and all.
local VENDOR_EXAMPLE = require("support.fixtures").VENDOR_BODY

local function task(over)
  local t = {
    keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
    nodeList = { { source = 3, text = "Your parcel is here", lan = "en-US", hangUpSms = 0, toSeat = 0 } },
  }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

-- Correctly signed headers for ts (default now); over: false deletes a header.
local function signed(sb, ts, over)
  ts = ts or os.time()
  local h = {
    ["Content-Type"] = "application/json;charset=UTF-8",
    ["Api-Key"] = sb.api_key,
    ["Timestamp"] = tostring(ts),
    ["Sign"] = core.sign(sb.api_key, sb.api_secret, ts),
  }
  for k, v in pairs(over or {}) do
    if v == false then h[k] = nil else h[k] = v end
  end
  return h
end

-- POST /voice/recallFlow/update; returns {status, body, headers, json}.
local function update(sb, body, headers)
  if type(body) == "table" then body = cjson.encode(body) end
  local status, text, h = sb:request("POST", UPDATE, body or "", headers or signed(sb))
  local ok, decoded = pcall(cjson.decode, text or "")
  return { status = status, body = text, err = not status and text or nil, headers = h,
           json = ok and decoded or nil }
end

local function expect_code(r, code, pattern)
  assert.are.equal(200, r.status, tostring(r.err or r.body))
  assert.is_table(r.json, r.body)
  assert.are.equal(code, r.json.code, r.body)
  assert.are.equal(cjson.null, r.json.data)
  if pattern then
    assert.is_truthy(r.json.msg:find(pattern, 1, true), "msg: " .. r.json.msg)
  end
end

-- A raw HTTP/1.1 request and the reading of one response (Content-Length bodies).
local function raw_request(method, path, headers, body)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function read_response(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  local h = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.*)$")
    h[k:lower()] = v
  end
  local n = tonumber(h["content-length"] or 0)
  local body = n > 0 and assert(c:receive(n)) or ""
  return status, body, h
end

-- The status of a control-plane request (body: raw text).
local function control_status(sb, method, path, body)
  return (sb:request(method, path, body, body and { ["Content-Type"] = "application/json" } or nil))
end

local function connect(sb)
  local c = assert(socket.connect("127.0.0.1", sb.port))
  c:settimeout(10)
  return c
end

-- Seconds since the epoch of an HTTP date ("Mon, 23 Nov 2026 21:34:19 GMT").
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
local function http_date(s)
  local d, mon, y, H, M, S = s:match("^%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT$")
  assert(d, "not an HTTP date: " .. tostring(s))
  y, d = tonumber(y), tonumber(d)
  local m = MONTHS[mon]
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(H) * 3600 + tonumber(M) * 60 + tonumber(S)
end

local function sh(cmd)
  local out, ok = sandbox.run(cmd)
  return out, ok
end

local function exit_code(cmd)
  local out = sandbox.run(cmd .. " >/dev/null 2>&1; echo \"exit=$?\"")
  return tonumber(out:match("exit=(%d+)"))
end

-- A process that exists and is not a zombie (pid 1 of a container may reap late).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("*a")
  f:close()
  local state = stat:match("^.*%) (%a)")
  return state ~= "Z" and state ~= "X"
end

-- The command lines of the running nginx processes that name prefix.
local function nginx_of(prefix)
  local found = {}
  for line in sh("pgrep -a nginx"):gmatch("[^\n]+") do
    if line:find(prefix .. "/", 1, true) then found[#found + 1] = line end
  end
  return found
end

local function master_pid(sb)
  local f = io.open(sb.prefix .. "/logs/nginx.pid")
  if not f then return nil end
  local pid = f:read("*l")
  f:close()
  return pid
end

describe("the sandbox", function()
  local sb

  setup(function()
    sb = sandbox.start()
  end)

  teardown(function()
    if sb then sb:stop() end
  end)

  before_each(function()
    sb:reset()
  end)

  describe("start", function()
    it("prints the URLs, the CA file and the key, and runs in its prefix", function()
      assert.are.equal("http://127.0.0.1:" .. sb.port, sb.http_url)
      assert.are.equal("https://localhost:" .. sb.tls_port, sb.https_url)
      assert.are.equal(sb.prefix .. "/tls/ca.pem", sb.cafile)
      assert.are.equal("sandbox-key", sb.api_key)
      assert.is_truthy(sb.prefix:find("/build/test-sandbox-", 1, true))
      assert.are.equal("running", sb:status())
      -- no CA key is kept; the server key is only in the prefix
      assert.is_nil(io.open(sb.prefix .. "/tls/ca.key"))
      assert.is_truthy(io.open(sb.prefix .. "/tls/server.key"))
    end)

    it("writes its nginx.conf from the one template, every placeholder filled, "
      .. "a route per endpoint", function()
      local f = assert(io.open(sb.prefix .. "/conf/nginx.conf", "rb"))
      local conf = f:read("*a")
      f:close()
      assert.truthy(conf:find("^# Written by itnio%-sandbox"), conf:sub(1, 80))
      local left = conf:match("@[%u_]+@")
      assert.is_nil(left, "a placeholder left: " .. tostring(left))
      for _, e in ipairs(require("itnio.core").endpoints()) do
        assert.truthy(conf:find("location = " .. e.path .. " {", 1, true), e.path)
        assert.truthy(conf:find('require("itnio.testing.internal.handler").serve("' .. e.name .. '")',
                                1, true), e.name)
      end
    end)
  end)

  describe("a correct update", function()
    it("gets the vendor's documented answer and lands in the store", function()
      local t = task { recallInterval = 45, recallNum = 3 }
      local r = update(sb, t)
      assert.are.equal(200, r.status)
      assert.are.equal(SUCCESS, r.body)
      assert.is_truthy(r.headers["content-type"]:find("^application/json"))
      local stored = sb:task(299)
      assert.are.equal(299, stored.keyId)
      assert.are.equal("Pending", stored.status)
      assert.are.equal(1, stored.updates)
      assert.is_number(stored.updated_at)
      assert.are.same(t, stored.task)
    end)

    it("stores the last accepted body and counts the updates", function()
      assert.are.equal(SUCCESS, update(sb, task { recallNum = 2 }).body)
      assert.are.equal(SUCCESS, update(sb, task { recallNum = 5, recallType = 1 }).body)
      local stored = sb:task(299)
      assert.are.equal(2, stored.updates)
      assert.are.equal(5, stored.task.recallNum)
      assert.are.equal(1, stored.task.recallType)
      assert.are.equal(0, sb:task(301).updates)
    end)

    it("accepts the vendor's own example body (nulls are absent fields)", function()
      local r = update(sb, VENDOR_EXAMPLE)
      assert.are.equal(SUCCESS, r.body)
      local node = sb:task(299).task.nodeList[1]
      assert.are.equal(1000038, node.sipGroupId)
      assert.is_nil(node.text)
    end)

    it("accepts the agent-node shape", function()
      local r = update(sb, '{"keyId":301,"recallType":0,"recallInterval":30,"recallNum":1,'
        .. '"recallIntent":["101"],"nodeList":[{"scriptId":123}]}')
      assert.are.equal(SUCCESS, r.body)
      assert.are.same({ { scriptId = 123 } }, sb:task(301).task.nodeList)
    end)

    it("takes a 10 MB baseFile", function()
      local big = string.rep("QUJD", 2621440)   -- 10 MiB
      local t = task { nodeList = { { source = 2, uploadName = "big-file.wav", baseFile = big,
                                      hangUpSms = 0, toSeat = 0 } } }
      assert.are.equal(SUCCESS, update(sb, t).body)
      assert.are.equal(#big, #sb:task(299).task.nodeList[1].baseFile)
    end)
  end)

  describe("authentication", function()
    it("answers -1 to a wrong Api-Key", function()
      local h = signed(sb)
      h["Api-Key"] = "not-the-key"
      h.Sign = core.sign("not-the-key", sb.api_secret, h.Timestamp)
      expect_code(update(sb, task(), h), -1, "account authentication exception")
    end)

    it("answers -1 to a wrong Sign and never tells the secret or the right Sign", function()
      local ts = os.time()
      local r = update(sb, task(), signed(sb, ts, { Sign = core.sign(sb.api_key, "other", ts) }))
      expect_code(r, -1, "account authentication exception")
      assert.is_falsy(r.body:find(sb.api_secret, 1, true))
      assert.is_falsy(r.body:find(core.sign(sb.api_key, sb.api_secret, ts), 1, true))
    end)

    it("answers -1 to the Sign of another Timestamp", function()
      local ts = os.time()
      expect_code(update(sb, task(),
                         signed(sb, ts, { Sign = core.sign(sb.api_key, sb.api_secret, ts - 1) })), -1)
    end)

    it("answers -1 when a header is missing, naming it", function()
      for _, name in ipairs { "Api-Key", "Timestamp", "Sign" } do
        expect_code(update(sb, task(), signed(sb, nil, { [name] = false })), -1, name)
      end
    end)

    it("answers -1 to a Timestamp that is not digits and a Sign that is not 32 hex digits", function()
      expect_code(update(sb, task(), signed(sb, nil, { Timestamp = "12e3" })), -1, "Timestamp")
      expect_code(update(sb, task(), signed(sb, nil, { Sign = "xyz" })), -1, "Sign")
      expect_code(update(sb, task(), signed(sb, nil, { Sign = string.rep("g", 32) })), -1, "Sign")
    end)

    it("compares the Sign case-insensitively", function()
      local ts = os.time()
      local h = signed(sb, ts, { Sign = core.sign(sb.api_key, sb.api_secret, ts):upper() })
      assert.are.equal(SUCCESS, update(sb, task(), h).body)
    end)

    it("checks the vendor's test vector with nginx's md5", function()
      local vsb = sandbox.start { key = "bDqJFiq9", secret = "7bz1lzh9", window = 10 ^ 9 }
      finally(function() vsb:stop() end)
      local h = signed(vsb, 1630468800)
      assert.are.equal("05d7a50893e22a5c4bb3216ae3396c7c", h.Sign)
      assert.are.equal(SUCCESS, update(vsb, VENDOR_EXAMPLE, h).body)
    end)
  end)

  describe("the Timestamp window", function()
    it("answers -16 outside 300 s, both ways", function()
      local now = os.time()
      expect_code(update(sb, task(), signed(sb, now - 310)), -16, "timestamp expired")
      expect_code(update(sb, task(), signed(sb, now + 310)), -16, "timestamp expired")
      assert.are.equal(0, sb:task(299).updates)
    end)

    it("accepts inside 300 s, both ways", function()
      local now = os.time()
      assert.are.equal(SUCCESS, update(sb, task(), signed(sb, now - 290)).body)
      assert.are.equal(SUCCESS, update(sb, task(), signed(sb, now + 290)).body)
    end)
  end)

  describe("the body", function()
    it("answers -22 naming the broken rule", function()
      local r = update(sb, task { recallNum = 11 })
      expect_code(r, -22, "parameter exception: T3 recallNum: ")
      assert.are.equal(0, sb:task(299).updates)
    end)

    it("lists every broken rule", function()
      local r = update(sb, task { recallNum = 11, recallInterval = 0,
        nodeList = { { source = 3, lan = "en-US", hangUpSms = 1, toSeat = 0 } } })
      expect_code(r, -22, "T2 recallInterval: ")
      for _, id in ipairs { "T3 recallNum", "N5 nodeList[1].text", "N11 nodeList[1].smsContent", "; " } do
        assert.is_truthy(r.json.msg:find(id, 1, true), r.json.msg)
      end
    end)

    it("answers -22 to a body that is not JSON, or not an object", function()
      expect_code(update(sb, "{keyId: 299"), -22, "parameter exception: body is not JSON")
      expect_code(update(sb, ""), -22, "body is not JSON")
      expect_code(update(sb, "[1,2]"), -22, "not a JSON object")
      expect_code(update(sb, "299"), -22, "not a JSON object")
    end)

    it("answers -22 to a Content-Type that is not JSON", function()
      local r = update(sb, task(), signed(sb, nil, { ["Content-Type"] = "text/plain" }))
      expect_code(r, -22, "Content-Type")
    end)

    it("answers -22 to an edit of a task that is not Pending", function()
      local r = update(sb, task { keyId = 300 })
      expect_code(r, -22, "task 300 is not Pending (status Running), only Pending tasks can be edited")
      assert.are.equal(0, sb:task(300).updates)
    end)

    it("answers -22 to an unknown keyId", function()
      expect_code(update(sb, task { keyId = 987654 }), -22, "task 987654 does not exist")
    end)
  end)

  describe("the IP allow-list", function()
    it("answers -2 to an address not on the list, before any other check", function()
      local ipsb = sandbox.start { allow_ip = "10.9.9.9" }
      finally(function() ipsb:stop() end)
      local r = update(ipsb, task())
      assert.are.equal(200, r.status)
      assert.are.equal('{"code":-2,"msg":"IP limit","data":null}', r.body)
      expect_code(update(ipsb, "not json", {}), -2)
      -- the control endpoints stay open on loopback
      assert.are.equal(2, ipsb:stats().requests)
      assert.are.equal(0, ipsb:task(299).updates)
    end)
  end)

  describe("faults", function()
    it("delay sleeps, then answers normally", function()
      sb:fault { kind = "delay", ms = 300 }
      local t0 = socket.gettime()
      local r = update(sb, task())
      assert.is_true(socket.gettime() - t0 >= 0.29)
      assert.are.equal(SUCCESS, r.body)
      assert.are.equal(1, sb:task(299).updates)
    end)

    it("status answers that HTTP status, with Retry-After, for the next N requests", function()
      sb:fault { kind = "status", status = 503, retry_after = 7, count = 2 }
      assert.are.equal(1, sb:faults().length)
      for _ = 1, 2 do
        local r = update(sb, task())
        assert.are.equal(503, r.status)
        assert.are.equal("7", r.headers["retry-after"])
      end
      assert.are.equal(0, sb:faults().length)
      assert.are.equal(SUCCESS, update(sb, task()).body)
      assert.are.equal(1, sb:task(299).updates)
    end)

    it("status sends a given body", function()
      sb:fault { kind = "status", status = 500, body = "oops" }
      local r = update(sb, task())
      assert.are.equal(500, r.status)
      assert.are.equal("oops", r.body)
      assert.is_nil(r.headers["retry-after"])
    end)

    it("reset closes the connection without an answer", function()
      sb:fault { kind = "reset" }
      local c = connect(sb)
      local body = cjson.encode(task())
      assert(c:send(raw_request("POST", UPDATE, signed(sb), body)))
      local data, _, partial = c:receive("*a")
      c:close()
      assert.are.equal("", data or partial)
      assert.are.equal(SUCCESS, update(sb, task()).body)
      assert.are.equal(1, sb:task(299).updates)
    end)

    it("answer sends exactly the given status, body and headers", function()
      sb:fault { kind = "answer", body = '{"code":0,"msg":"succ', headers = { ["X-Fault"] = "yes" } }
      local r = update(sb, task())
      assert.are.equal(200, r.status)
      assert.are.equal('{"code":0,"msg":"succ', r.body)
      assert.are.equal("yes", r.headers["x-fault"])
      sb:fault { kind = "answer", status = 202, body = '{"code":"-1","reason":"x"}',
                 headers = { ["Content-Type"] = "text/plain" } }
      r = update(sb, task())
      assert.are.equal(202, r.status)
      assert.are.equal('{"code":"-1","reason":"x"}', r.body)
      assert.are.equal("text/plain", r.headers["content-type"])
      assert.are.equal(0, sb:task(299).updates)
    end)

    it("answer can send a 2 MiB body", function()
      local big = '{"code":0,"msg":"' .. string.rep("x", 2 * 1024 * 1024) .. '"}'
      sb:fault { kind = "answer", body = big }
      local r = update(sb, task())
      assert.are.equal(#big, #r.body)
      assert.are.equal(big, r.body)
    end)

    it("code answers that code in the vendor's shape", function()
      sb:fault { kind = "code", code = -18 }
      local r = update(sb, task())
      assert.are.equal('{"code":-18,"msg":"system exception","data":null}', r.body)
      sb:fault { kind = "code", code = -16, msg = "clock" }
      assert.are.equal('{"code":-16,"msg":"clock","data":null}', update(sb, task()).body)
      assert.are.equal(0, sb:task(299).updates)
    end)

    it("are a queue, consumed before any check", function()
      sb:fault { kind = "code", code = -18, count = 2 }
      sb:fault { kind = "status", status = 429 }
      assert.are.same(3, sb:faults().remaining)
      -- an unsigned request still consumes a fault
      expect_code(update(sb, "junk", {}), -18)
      expect_code(update(sb, task()), -18)
      assert.are.equal(429, update(sb, task()).status)
      assert.are.equal(SUCCESS, update(sb, task()).body)
      assert.are.equal(0, sb:faults().length)
    end)

    it("are cleared by reset, and a bad one is refused", function()
      sb:fault { kind = "code", code = -18, count = 5 }
      sb:reset()
      assert.are.equal(0, sb:faults().length)
      local status, text = sb:request("POST", "/sandbox/faults", '{"kind":"explode"}')
      assert.are.equal(400, status)
      assert.is_truthy(text:find("kind", 1, true))
      status = sb:request("POST", "/sandbox/faults", '{"kind":"status"}')
      assert.are.equal(400, status)
    end)
  end)

  describe("control", function()
    it("seeds 299 and 301 Pending and 300 Running, and reset restores them", function()
      assert.are.equal("Pending", sb:task(299).status)
      assert.are.equal("Running", sb:task(300).status)
      assert.are.equal("Pending", sb:task(301).status)
      assert.is_nil(sb:task(299).task)
      assert.is_nil(sb:task(302))
      update(sb, task())
      sb:set_task(299, "Finished")
      expect_code(update(sb, task()), -22, "not Pending (status Finished)")
      sb:reset()
      local t = sb:task(299)
      assert.are.equal("Pending", t.status)
      assert.are.equal(0, t.updates)
      assert.is_nil(t.task)
    end)

    it("counts requests and connections: two requests on one keep-alive connection are one", function()
      local c = connect(sb)
      for _ = 1, 2 do
        assert(c:send(raw_request("POST", UPDATE, signed(sb), cjson.encode(task()))))
        local status, body = read_response(c)
        assert.are.equal(200, status)
        assert.are.equal(SUCCESS, body)
      end
      c:close()
      assert.are.same({ requests = 2, connections = 1, accepted = 2 }, sb:stats())
      update(sb, task { recallNum = 99 })
      assert.are.same({ requests = 3, connections = 2, accepted = 2 }, sb:stats())
    end)

    it("tells when each request arrived, in order, and forgets them on a reset", function()
      local t0 = os.time()
      update(sb, task())
      update(sb, task { recallNum = 99 })
      local a = sb:arrivals()
      assert.equal(2, #a)
      assert.is_true(a[1] <= a[2])
      assert.is_true(math.abs(a[1] - t0) < 5, a[1] .. " is not near " .. t0)
      sb:reset()
      assert.are.same({}, sb:arrivals())
    end)

    it("makes a range of tasks at once and counts them by their updates", function()
      assert.are.same({ tasks = 500 }, sb:seed(5001, 5500))
      update(sb, task { keyId = 5001 })
      update(sb, task { keyId = 5002 })
      update(sb, task { keyId = 5002 })
      local u = sb:updates(5001, 5500)
      assert.equal(500, u.tasks)
      assert.are.same({ ["0"] = 498, ["1"] = 1, ["2"] = 1 }, u.updates)
      assert.equal(20, #u.never)
      assert.equal(5003, u.never[1])
      assert.are.same({ 5002 }, u.more)
      -- ids that are no task are not counted
      assert.equal(500, sb:updates(4000, 6000).tasks)
      sb:seed(5001, 5001, "Running")
      assert.equal("Running", sb:task(5001).status)
      assert.equal(1, sb:task(5001).updates)
    end)

    it("refuses a range that is not one, or is too wide", function()
      for _, q in ipairs{ "from=5&to=4", "from=x&to=9", "from=1&to=1000001", "to=3" } do
        local status = control_status(sb, "GET", "/sandbox/tasks?" .. q)
        assert.equal(400, status, q)
      end
      assert.equal(400, control_status(sb, "POST", "/sandbox/tasks", '{"from":1,"to":2}'))
      assert.equal(400, control_status(sb, "POST", "/sandbox/tasks",
                                       '{"from":1.5,"to":2,"status":"Pending"}'))
      assert.equal(405, control_status(sb, "DELETE", "/sandbox/tasks"))
    end)
  end)

  describe("the clock", function()
    it("sends its own time in Date", function()
      local r = update(sb, task())
      assert.is_true(math.abs(http_date(r.headers["date"]) - os.time()) <= 2)
    end)

    it("follows --skew in Date and in the Timestamp check, holds with --hold-ms, "
      .. "closes idle keep-alive", function()
      local skew = 7200
      local ssb = sandbox.start { skew = skew, hold_ms = 300, keepalive_timeout = 1 }
      finally(function() ssb:stop() end)
      local status, _, h = ssb:request("GET", "/sandbox/stats")
      assert.are.equal(200, status)
      assert.is_true(math.abs(http_date(h["date"]) - (os.time() + skew)) <= 2, h["date"])

      -- our clock is 2 h behind the sandbox's
      expect_code(update(ssb, task()), -16)
      local r = update(ssb, task(), signed(ssb, os.time() + skew))
      assert.are.equal(SUCCESS, r.body)
      assert.is_true(math.abs(http_date(r.headers["date"]) - (os.time() + skew)) <= 2)

      -- two requests held at once take one hold, not two
      local a, b = connect(ssb), connect(ssb)
      local t0 = socket.gettime()
      assert(a:send(raw_request("POST", UPDATE, signed(ssb, os.time() + skew), cjson.encode(task()))))
      assert(b:send(raw_request("POST", UPDATE, signed(ssb, os.time() + skew), cjson.encode(task()))))
      assert.are.equal(SUCCESS, select(2, read_response(a)))
      assert.are.equal(SUCCESS, select(2, read_response(b)))
      local took = socket.gettime() - t0
      assert.is_true(took >= 0.29 and took < 0.55, "took " .. took)
      b:close()

      -- keepalive_timeout 1 s: an idle connection is closed by the server
      socket.sleep(1.6)
      a:settimeout(2)
      local data, err = a:receive("*l")
      assert.is_nil(data)
      assert.are.equal("closed", err)
      a:close()
    end)
  end)

  describe("HTTPS", function()
    local function curl(args)
      return sh("curl -sS --max-time 10 " .. args)
    end

    it("works with the CA file", function()
      local out, ok = curl("-o /dev/null -w '%{http_code}' --cacert "
        .. sandbox.shell_quote(sb.cafile) .. " " .. sb.https_url .. "/sandbox/stats")
      assert.is_true(ok, out)
      assert.are.equal("200", out)
      -- a signed update over TLS, to localhost and to 127.0.0.1 (both in subjectAltName)
      for _, base in ipairs { sb.https_url, "https://127.0.0.1:" .. sb.tls_port } do
        local h = signed(sb)
        local args = { "--cacert", sandbox.shell_quote(sb.cafile), "-X POST" }
        for k, v in pairs(h) do args[#args + 1] = "-H " .. sandbox.shell_quote(k .. ": " .. v) end
        args[#args + 1] = "--data-binary " .. sandbox.shell_quote(cjson.encode(task()))
        args[#args + 1] = base .. UPDATE
        out, ok = curl(table.concat(args, " "))
        assert.is_true(ok, out)
        assert.are.equal(SUCCESS, out)
      end
      assert.are.equal(2, sb:task(299).updates)
    end)

    it("fails without the CA file", function()
      assert.are.equal(60, exit_code("curl -sS --max-time 10 -o /dev/null " .. sb.https_url
        .. "/sandbox/stats"))
    end)
  end)

  describe("bin/itnio-sandbox", function()
    it("status, restart and stop leave no nginx of that prefix behind", function()
      local psb = sandbox.start()
      local stopped = false
      finally(function() if not stopped then psb:stop() end end)
      local pid = master_pid(psb)
      assert.is_truthy(pid and alive(pid))
      assert.are.equal("running", psb:status())

      -- start on a running prefix restarts it
      local out, ok = psb:launch("start", "--port", psb.port, "--tls-port", psb.tls_port)
      assert.is_true(ok, out)
      assert.is_truthy(out:find("http_url=http://127.0.0.1:" .. psb.port, 1, true))
      local pid2 = master_pid(psb)
      assert.are_not.equal(pid, pid2)
      assert.is_false(alive(pid))
      assert.are.equal(1, #nginx_of(psb.prefix))
      local workers = {}
      for w in sh("pgrep -P " .. pid2):gmatch("%d+") do workers[#workers + 1] = w end
      assert.is_true(#workers >= 1)
      assert.are.equal(0, psb:stats().requests)

      out, ok = psb:launch("stop")
      assert.is_true(ok, out)
      stopped = true
      assert.is_false(alive(pid2))
      for _, w in ipairs(workers) do assert.is_false(alive(w)) end
      assert.are.same({}, nginx_of(psb.prefix))
      assert.are.equal("stopped", psb:status())
      assert.are.equal(1, exit_code(sandbox.shell_quote(sandbox.launcher) .. " status --prefix "
        .. sandbox.shell_quote(psb.prefix)))
      psb:stop() -- stopping a stopped sandbox is fine
    end)

    it("finds the sandbox start started however the prefix is spelled, and only stops what it stopped",
       function()
      -- (a regression: the checkout's default prefix was bin/../build/sandbox, unresolved, so
      -- status and stop took the running nginx for another process, removed its pid file and
      -- said all was well)
      local q = sandbox.shell_quote
      local base = sandbox.root .. "/build/stop-spec-" .. os.time() .. "-" .. math.random(1e6)
      assert(select(2, sandbox.run("mkdir -p " .. q(base .. "/sub") .. " && ln -s " .. q(base) .. " "
        .. q(base .. "-link"))))
      local spelled = base .. "/sub/../sb"   -- the same directory, three ways
      local canonical, linked = base .. "/sb", base .. "-link/sb"
      local port, tls_port = sandbox.free_ports()
      local function launch(cwd, ...)
        local args = { ... }
        for i, a in ipairs(args) do args[i] = q(a) end
        return sandbox.run("cd " .. q(cwd) .. " && " .. q(sandbox.launcher) .. " " .. table.concat(args, " "))
      end
      finally(function()
        launch("/", "stop", "--prefix", canonical)
        sandbox.run("rm -rf -- " .. q(base) .. " " .. q(base .. "-link"))
      end)
      local out, ok = launch(sandbox.root, "start", "--prefix", spelled, "--port", port,
                             "--tls-port", tls_port)
      assert.is_true(ok, out)
      for _, p in ipairs{ spelled, canonical, linked } do
        out, ok = launch("/tmp", "status", "--prefix", p)
        assert.is_true(ok, p .. ": " .. out)
        assert.equal("running\n", out)
      end
      -- its pid file lost: stop still finds it, by its command line
      os.remove(canonical .. "/logs/nginx.pid")
      assert.equal("running\n", (launch("/", "status", "--prefix", linked)))
      out, ok = launch("/", "stop", "--prefix", linked)
      assert.is_true(ok, out)
      assert.are.same({}, nginx_of(canonical))
      out, ok = launch("/", "status", "--prefix", spelled)
      assert.is_false(ok)
      assert.equal("stopped\n", out)
      -- and the port is free again: a new start on it works
      out, ok = launch(sandbox.root, "start", "--prefix", canonical, "--port", port, "--tls-port", tls_port)
      assert.is_true(ok, out)
    end)

    it("refuses a port that is taken, saying why", function()
      local out, ok = sandbox.run(sandbox.shell_quote(sandbox.launcher) .. " start --prefix "
        .. sandbox.shell_quote(sb.prefix .. "-clash") .. " --port " .. sb.port
        .. " --tls-port " .. select(1, sandbox.free_ports()))
      sandbox.run("rm -rf -- " .. sandbox.shell_quote(sb.prefix .. "-clash"))
      assert.is_false(ok)
      assert.is_truthy(out:find("Address already in use", 1, true), out)
      assert.are.equal("running", sb:status())
    end)
  end)

  it("logged no Lua error and no global-variable warning", function()
    local log = sb:error_log()
    assert.is_falsy(log:find("[error]", 1, true), log)
    assert.is_falsy(log:find("global", 1, true), log)
    assert.is_falsy(log:find("[alert]", 1, true), log)
  end)
end)
