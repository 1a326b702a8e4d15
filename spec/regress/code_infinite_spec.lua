-- Regression (found by spec/property/ngx_answers_spec.lua): an answer whose code was 1e400
-- (cjson decodes it as infinity) became an ApiError with code = inf under LuaJIT, whose
-- math.tointeger stand-in let it through, and a DecodeError under Lua 5.4. A code must be a
-- whole number a JSON reader carries exactly; anything else is "no status code" everywhere.
local itnio  = require "itnio"
local errors = require "itnio.errors"

describe("regress: a code that is not a whole number JSON carries", function()
  for _, code in ipairs{ "1e400", "-1e400", "9007199254740993", "1e300", '"1e400"' } do
    it("is a DecodeError: " .. code, function()
      local c = assert(itnio.new{ api_key = "spec-key", api_secret = "spec-secret", transport = function()
        return { status = 200, headers = {}, body = '{"code":' .. code .. ',"msg":"odd"}' }
      end })
      local res, err = c:recall_update{ keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
                                        nodeList = {} }
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.DecodeError), tostring(err))
      assert.is_nil(err.code)
    end)
  end
end)
