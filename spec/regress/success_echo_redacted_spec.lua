-- Regression: a success answer that echoed the secret was handed back as it came (res.message,
-- res.data), though the client promises redaction everywhere (doc/client.md), and the
-- OpenResty example returns res.message to its own callers. Errors were redacted; successes were not.
local cjson   = require "cjson"
local itnio   = require "itnio"
local sandbox = require "support.sandbox"
local dump    = require("support.fixtures").dump

local SECRET = "s3cr/et-ECHO"
local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }

local bodies = {
  { "in msg", '{"code":0,"msg":"ok for ' .. SECRET .. '"}' },
  { "in data, nested",
    cjson.encode{ code = 0, data = { echo = { SECRET, { deeper = "x" .. SECRET .. "y" } } } } },
  { "as a key of data", '{"code":0,"data":{"' .. SECRET .. '":1}}' },
  { "escaped (\\/ and \\u)", '{"code":0,"msg":"s3cr\\/et-\\u0045CHO","data":["\\u0073\\u0033cr/et-ECHO"]}' },
}

describe("regress: a success that echoes the secret", function()
  for _, b in ipairs(bodies) do
    it("is redacted: " .. b[1], function()
      local c = assert(itnio.new{ api_key = "spec-key", api_secret = SECRET, transport = function()
        return { status = 200, headers = {}, body = b[2] }
      end })
      local res = assert(c:recall_update(TASK))
      assert.equal(0, res.code)
      local text = dump(res)
      assert.is_nil(text:find(SECRET, 1, true), text)
      assert.truthy(text:find("<redacted>", 1, true), text)
    end)
  end

  it("is redacted through libcurl and through a job, from the sandbox", function()
    local sb = sandbox.start{ secret = SECRET }
    local ok, e = pcall(function()
      local c = assert(itnio.new{ api_key = sb.api_key, api_secret = SECRET, base_url = sb.http_url })
      sb:fault{ count = 2, kind = "answer", status = 200, body = bodies[2][2] }
      local res = assert(c:recall_update(TASK))
      local job = assert(c:start_recall_update(TASK))
      while c:poll(0.05) > 0 do end
      local res2 = assert(job:result())
      for _, r in ipairs{ res, res2 } do
        assert.is_nil(dump(r):find(SECRET, 1, true), dump(r))
        assert.truthy(dump(r):find("<redacted>", 1, true))
      end
    end)
    sb:stop()
    assert(ok, e)
  end)

  it("leaves an answer without the secret as it came", function()
    local c = assert(itnio.new{ api_key = "spec-key", api_secret = SECRET, transport = function()
      return { status = 200, headers = {}, body = '{"code":0,"msg":"fine \\/ here","data":{"n":1}}' }
    end })
    local res = assert(c:recall_update(TASK))
    assert.equal("fine / here", res.message)
    assert.same({ n = 1 }, res.data)
  end)
end)
