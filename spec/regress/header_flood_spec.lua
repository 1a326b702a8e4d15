-- Regression: the curl transport joined repeated header names with lua_concat as each came,
-- so 70,000 repeats of one name (280 KB) cost over 2 s of CPU after the transfer, outside
-- every timeout; and it took a header block up to max_body (1 MiB). The block is now capped
-- at 64 KiB, as the nginx reader caps it, and repeats are joined once, in linear time.
local itnio   = require "itnio"
local core    = require "itnio.core"
local rawpeer = require "support.rawpeer"

local OK_BODY = '{"code":0,"msg":"success"}'
local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }

describe("regress: a flood of header lines", function()
  local peer
  setup(function() peer = rawpeer.start() end)
  teardown(function() if peer then peer:stop() end end)

  local function answer_with(head_lines)
    peer:answer("HTTP/1.1 200 OK\r\nContent-Length: " .. #OK_BODY .. "\r\n"
      .. head_lines .. "\r\n" .. OK_BODY)
    local c = assert(itnio.new{ api_key = "spec-key", api_secret = "spec-secret",
      base_url = peer.url, max_retries = 0, timeout = 5 })
    local t0 = os.clock()
    local res, err = c:recall_update(TASK)
    return res, err, os.clock() - t0
  end

  it("refuses a header block over 64 KiB with a protocol error", function()
    local res, err = answer_with(("X-A: v\r\n"):rep(70000))
    assert.is_nil(res)
    assert.equal("TransportError", err.kind)
    assert.equal("protocol", err.reason)
    assert.truthy(err.message:find("64 KiB", 1, true), err.message)
  end)

  it("reads many repeats under the cap, joined in order", function()
    local res, err = answer_with(("X-A: v\r\n"):rep(7000) .. "Retry-After: 1\r\n")
    assert.truthy(res, tostring(err))
    local h = core.parse_headers(("X-A: 1\r\nX-B: 2\r\nx-a: 3\r\n"):rep(3))
    assert.equal("1, 3, 1, 3, 1, 3", h["x-a"])
    assert.equal("2, 2, 2", h["x-b"])
  end)

  it("joins 70,000 repeats in linear time (the old join took seconds) #timing", function()
    local t0 = os.clock()
    local h = core.parse_headers(("X-A: v\r\n"):rep(70000))
    assert.equal(70000 * 3 - 2, #h["x-a"])
    assert.is_true(os.clock() - t0 < 0.5, "parsing took " .. (os.clock() - t0) .. " s of CPU")
  end)
end)
