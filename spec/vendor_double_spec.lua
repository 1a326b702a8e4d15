-- itnio.testing.vendor: the vendor double, with no nginx. It must play the vendor's rules as
-- the sandbox does: the same requests get the same answers from both (one emulation,
-- itnio.testing.internal.vendor, two hosts), and a client drives it through its transport option.
local cjson   = require "cjson"
local itnio   = require "itnio"
local core    = require "itnio.core"
local testing = require "itnio.testing"
local sandbox = require "support.sandbox"

local KEY, SECRET = "double-key", "double-secret"
local TASK = sandbox.task("From the double")

local function double(over)
  local o = { api_key = KEY, api_secret = SECRET }
  for k, v in pairs(over or {}) do o[k] = v end
  return testing.vendor(o)
end

local function client(transport, over)
  local o = { api_key = KEY, api_secret = SECRET, transport = transport, backoff_base = 0.01,
              backoff_cap = 0.02 }
  for k, v in pairs(over or {}) do o[k] = v end
  return assert(itnio.new(o))
end

describe("itnio.testing.vendor", function()
  it("updates a Pending task and stores it, as the vendor would", function()
    local t, vendor = double()
    local res = assert(client(t):recall_update(TASK))
    assert.equal(0, res.code)
    assert.equal("success", res.message)
    local stored = vendor.task(299)
    assert.equal("Pending", stored.status)
    assert.equal(1, stored.updates)
    assert.equal("From the double", stored.task.nodeList[1].text)
    assert.are.same({ requests = 1, connections = 1, accepted = 1 }, vendor.stats())
    assert.equal(1, #vendor.arrivals())
    local seen = vendor.requests()
    assert.equal(1, #seen)
    assert.equal("/voice/recallFlow/update", seen[1].path)
    assert.equal(KEY, seen[1].headers["Api-Key"])
  end)

  it("refuses a Running task (-22), an unknown one (-22), a wrong secret (-1), "
    .. "another address (-2)", function()
    local t = double()
    local _, err = client(t):recall_update(sandbox.task("x", { keyId = 300 }))
    assert.equal("ParameterError", err.kind)
    assert.matches("not Pending %(status Running%)", err.message)
    _, err = client(t):recall_update(sandbox.task("x", { keyId = 777 }))
    assert.matches("does not exist", err.message)
    _, err = client(t, { api_secret = "wrong" }):recall_update(TASK)
    assert.equal("AuthError", err.kind)
    assert.matches("Sign does not match", err.message)
    local far = double{ allow_ips = { "10.0.0.1" } }
    _, err = client(far):recall_update(TASK)
    assert.equal("IpLimitError", err.kind)
  end)

  it("checks the Timestamp window: the client learns the vendor's clock from Date and resends", function()
    local t, vendor = double{ skew = 3600 }
    local c = client(t)
    local res = assert(c:recall_update(TASK))
    assert.equal(2, res.attempts)
    assert.is_true(math.abs(c.state:offset() - 3600) <= 2)
    assert.equal(2, vendor.stats().requests)
  end)

  it("starts with the tasks it is given, and reset restores them", function()
    local t, vendor = double{ tasks = { { id = 5, status = "Pending" } } }
    assert.is_nil(vendor.task(299))
    assert(client(t):recall_update(sandbox.task("x", { keyId = 5 })))
    vendor.set_task(6, "Running")
    assert.equal("Running", vendor.task(6).status)
    vendor.reset()
    assert.equal(0, vendor.task(5).updates)
    assert.is_nil(vendor.task(6))
    assert.equal(0, #vendor.requests())
  end)

  describe("faults, as the sandbox's", function()
    it("status: a 503 is retried; a 429 gives its Retry-After", function()
      local t, vendor = double()
      vendor.fault{ kind = "status", status = 503, count = 1 }
      local res = assert(client(t):recall_update(TASK))
      assert.equal(2, res.attempts)
      vendor.fault{ kind = "status", status = 429, retry_after = 30 }
      local _, err = client(t, { max_retries = 0 }):recall_update(TASK)
      assert.equal(429, err.http_status)
      assert.equal(30, err.retry_after)
      assert.equal("30", err.headers["retry-after"])
    end)

    it("code: the vendor's -18; answer: malformed JSON; reset: no answer", function()
      local t, vendor = double()
      local c = client(t, { max_retries = 0 })
      vendor.fault{ kind = "code", code = -18 }
      assert.equal("SystemError", select(2, c:recall_update(TASK)).kind)
      vendor.fault{ kind = "answer", status = 200, body = "{not json" }
      assert.equal("DecodeError", select(2, c:recall_update(TASK)).kind)
      vendor.fault{ kind = "reset" }
      local _, err = c:recall_update(TASK)
      assert.equal("TransportError", err.kind)
      assert.equal("reset", err.reason)
      assert.is_true(err.sent)
    end)

    it("delay: the answer waits; longer than the request's timeout, it is a timeout #timing", function()
      local t, vendor = double()
      local c = client(t, { max_retries = 0, timeout = 0.2 })
      vendor.fault{ kind = "delay", ms = 50 }
      local t0 = core.now()
      assert(c:recall_update(TASK))
      assert.is_true(core.now() - t0 >= 0.05)
      vendor.fault{ kind = "delay", ms = 5000 }
      t0 = core.now()
      local _, err = c:recall_update(TASK)
      assert.equal("timeout", err.reason)
      assert.is_true(core.now() - t0 < 1)
    end)

    it("refuses a fault that is none, naming why", function()
      local _, vendor = double()
      assert.has_error(function() vendor.fault{ kind = "explode" } end)
      assert.has_error(function() vendor.fault{ kind = "delay" } end)
    end)
  end)

  it("refuses options without an account", function()
    assert.has_error(function() testing.vendor{} end)
    assert.has_error(function() testing.vendor{ api_key = "k" } end)
  end)
end)

describe("the double and the sandbox", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  -- The same raw request, to both: their statuses and bodies.
  it("give the same answer to the same request: one emulation, two hosts", function()
    local t = testing.vendor{ api_key = sb.api_key, api_secret = sb.api_secret }
    local ts = string.format("%d", math.floor(core.time()))
    local function headers(over)
      local h = { ["Content-Type"] = "application/json;charset=UTF-8", ["Api-Key"] = sb.api_key,
                  Timestamp = ts, Sign = core.sign(sb.api_key, sb.api_secret, ts) }
      for k, v in pairs(over or {}) do h[k] = v or nil end
      return h
    end
    local body = cjson.encode(TASK)
    local cases = {
      { "success", headers(), body },
      { "a Running task", headers(), cjson.encode(sandbox.task("x", { keyId = 300 })) },
      { "a broken task", headers(), '{"keyId":299,"recallType":7}' },
      { "not JSON", headers(), "{nope" },
      { "an array", headers(), "[1,2]" },
      { "a wrong Sign", headers{ Sign = string.rep("0", 32) }, body },
      { "no Api-Key", headers{ ["Api-Key"] = false }, body },
      { "an old Timestamp",
        headers{ Timestamp = "1000", Sign = core.sign(sb.api_key, sb.api_secret, "1000") }, body },
      { "a wrong Content-Type", headers{ ["Content-Type"] = "text/plain" }, body },
    }
    for _, case in ipairs(cases) do
      sb:reset()
      local status, text = sb:request("POST", "/voice/recallFlow/update", case[3], case[2])
      local resp = t{ method = "POST", url = "http://vendor.invalid/voice/recallFlow/update",
                      headers = case[2], body = case[3], timeout = 5 }
      assert.equal(status, resp.status, case[1])
      assert.equal(text, resp.body, case[1])
    end
  end)
end)
