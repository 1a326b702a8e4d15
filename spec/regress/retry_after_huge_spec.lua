-- Regression: the message of a Retry-After longer than max_retry_after was written with
-- string.format("%d", ...): under Lua 5.4 a delta of 2^63 or more, or an HTTP date with no
-- usable Date beside it (a fraction of a second off our clock), raised "number has no integer
-- representation" out of the call; under LuaJIT it printed a nonsense number.
local itnio  = require "itnio"
local errors = require "itnio.errors"

local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }

local function call_with(headers)
  local calls = 0
  local c = assert(itnio.new{ api_key = "spec-key", api_secret = "spec-secret-1", max_retries = 2,
    max_retry_after = 5,
    transport = function()
      calls = calls + 1
      return { status = 503, headers = headers, body = "busy" }
    end })
  local ok, res, err = pcall(c.recall_update, c, TASK)
  assert.is_true(ok, tostring(res))
  return res, err, calls
end

describe("regress: a Retry-After the message cannot print as an integer", function()
  local cases = {
    { "2^63 seconds", { ["retry-after"] = "9223372036854775808" }, "9.22e%+18s" },
    { "10^40 seconds", { ["retry-after"] = "1" .. string.rep("0", 40) }, "1e%+40s" },
    { "an HTTP date with no Date beside it",
      { ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 3600) }, "%d+%.?%d*s" },
    { "an HTTP date with a Date that does not parse",
      { ["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 3600), date = "yesterday" },
      "%d+%.?%d*s" },
  }
  for _, case in ipairs(cases) do
    it("returns an HttpError that says so, not a raise: " .. case[1], function()
      local res, err, calls = call_with(case[2])
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.HttpError))
      assert.equal(1, calls)
      local msg = err.message
      assert.truthy(msg:find("longer than max_retry_after", 1, true), msg)
      assert.truthy(msg:find("Retry%-After " .. case[3]), msg)
      assert.is_nil(msg:find("-9223372036854775808", 1, true), msg)
    end)
  end
end)
