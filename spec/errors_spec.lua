-- itnio.errors (one class per cause).
local errors = require "itnio.errors"

describe("itnio.errors", function()
  local by_code = {
    { -1,  "AuthError",             false },
    { -2,  "IpLimitError",          false },
    { -16, "TimestampExpiredError", false },
    { -18, "SystemError",           true },
    { -22, "ParameterError",        false },
    { -7,  "ApiError",              false },
    { 42,  "ApiError",              false },
  }
  for _, row in ipairs(by_code) do
    it("maps code " .. row[1] .. " to " .. row[2], function()
      local e = errors.from_code(row[1], "server says so", { http_status = 200, attempts = 1 })
      assert.equal(row[2], e.kind)
      assert.is_true(errors.is(e, errors[row[2]]))
      assert.is_true(e:is())
      assert.equal(row[1], e.code)
      assert.equal("server says so", e.message)
      assert.equal(row[3], e.retryable)
      assert.equal(200, e.http_status)
    end)
  end

  it("keeps the class's own message when the server gives none", function()
    assert.equal("account authentication exception", errors.from_code(-1).message)
    assert.equal("API error", errors.from_code(-5, "").message)
  end)

  it("tells classes apart", function()
    local e = errors.AuthError.new()
    assert.is_false(errors.is(e, errors.IpLimitError))
    assert.is_false(errors.is("AuthError", errors.AuthError))
    assert.is_false(errors.is(nil, errors.AuthError))
    assert.is_false(errors.is(e, nil))
  end)

  it("prints one line with kind, message, code, status and attempts", function()
    local e = errors.SystemError.new{ message = "busy\nnow\r\tx", http_status = 200, attempts = 3 }
    assert.equal("SystemError: busy now x (code -18, HTTP 200, 3 attempts)", tostring(e))
    assert.equal("TransportError: connect failed (1 attempt)",
                 tostring(errors.TransportError.new{ message = "connect failed", attempts = 1 }))
  end)

  it("gives each instance its own fields, never the class's", function()
    local a, b = errors.HttpError.new{ http_status = 500 }, errors.HttpError.new{ http_status = 503 }
    assert.equal(500, a.http_status)
    assert.equal(503, b.http_status)
    assert.is_nil(rawget(errors.HttpError, "http_status"))
  end)

  it("builds a ValidationError naming the first five rules and counting the rest", function()
    local list = {}
    for i = 1, 8 do list[i] = { rule = "N" .. i, field = "f" .. i, message = "f" .. i .. " is bad" } end
    local e = errors.validation(list, true)
    assert.equal("ValidationError", e.kind)
    assert.equal(list, e.errors)
    assert.is_true(e.truncated)
    assert.equal(0, e.attempts)
    local s = tostring(e)
    assert.truthy(s:find("breaks 8+ rules", 1, true))
    assert.truthy(s:find("N5 f5 is bad", 1, true))
    assert.is_nil(s:find("N6", 1, true))
    assert.truthy(s:find("and 3 more (list cut at 100)", 1, true))
    assert.equal("ValidationError: the task breaks 1 rule: T1 keyId is required (0 attempts)",
                 tostring(errors.validation({ { rule = "T1", field = "keyId",
                                                message = "keyId is required" } })))
  end)
end)
