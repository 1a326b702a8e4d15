-- itnio.httpdate: the HTTP dates the client reads (Date for the skew fix, Retry-After).
local httpdate = require "itnio.internal.httpdate"

describe("itnio.httpdate.parse", function()
  local rows = {
    { "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },      -- RFC 9110's example
    { "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
    { "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000 },     -- a leap day
    { "Wed, 01 Sep 2021 00:00:00 GMT", 1630454400 },
    { "Fri, 31 Dec 2100 23:59:59 GMT", 4133980799 },
  }
  for _, r in ipairs(rows) do
    it("reads " .. r[1], function() assert.equal(r[2], httpdate.parse(r[1])) end)
  end
  for _, bad in ipairs({ "", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Xyz 1994 08:49:37 GMT",
                         "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
                         "Sunday, 06-Nov-94 08:49:37 GMT" }) do
    it("refuses " .. string.format("%q", bad), function() assert.is_nil(httpdate.parse(bad)) end)
  end
  it("refuses a non-string", function() assert.is_nil(httpdate.parse(nil)) end)
end)

describe("itnio.httpdate.retry_after", function()
  it("reads delta-seconds, and a date against the answer's Date or the given clock", function()
    assert.equal(120, httpdate.retry_after(" 120 ", nil, 0))
    assert.equal(30, httpdate.retry_after("Wed, 21 Oct 2015 07:28:30 GMT",
                                          "Wed, 21 Oct 2015 07:28:00 GMT", 0))
    assert.equal(0, httpdate.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:30 GMT", 0))
    assert.equal(10, httpdate.retry_after("Thu, 01 Jan 1970 00:00:20 GMT", nil, 10))
  end)
  it("gives nil for anything else", function()
    for _, bad in ipairs{ "soon", "-5", "1.5", "", false } do
      assert.is_nil(httpdate.retry_after(bad, nil, 0))
    end
  end)
end)
