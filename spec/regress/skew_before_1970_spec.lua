-- Regression: a -16 answer whose Date is before 1970 made the skew fix compute a negative
-- Timestamp; core.sign raised, the call raised instead of returning, and the offset it kept
-- broke every later call of the client (inside nginx: a worker's shared client answered 500
-- until reload). The server's clock is still the truth, but a Timestamp is never negative.
local itnio = require "itnio"

describe("regress: a server clock before 1970", function()
  for _, date in ipairs{ "Wed, 31 Dec 1969 23:59:00 GMT", "Mon, 01 Jan 1900 00:00:00 GMT",
                         "Thu, 01 Jan 1970 00:00:00 GMT" } do
    it("never signs a negative Timestamp, and the client stays usable (Date " .. date .. ")", function()
      local seen = {}
      local function transport(req)
        seen[#seen + 1] = req.headers.Timestamp
        if #seen == 1 then
          return { status = 200, headers = { date = date }, body = '{"code":-16,"msg":"timestamp expired"}' }
        end
        return { status = 200, headers = { date = date }, body = '{"code":0,"msg":"success"}' }
      end
      local c = assert(itnio.new{ api_key = "spec-key", api_secret = "spec-secret-1", transport = transport,
                                  max_retries = 0 })
      local task = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }
      local ok, res, err = pcall(c.recall_update, c, task)
      assert.is_true(ok, tostring(res))
      assert.truthy(res, tostring(err))
      assert.equal(2, res.attempts)
      assert.equal("0", seen[2])
      local ok2, res2 = pcall(c.recall_update, c, task)
      assert.is_true(ok2, tostring(res2))
      assert.truthy(res2)
      assert.equal("0", c:prepare_recall_update(task).headers.Timestamp)
      for _, ts in ipairs(seen) do assert.truthy(ts:match("^%d+$"), ts) end
    end)
  end
end)
