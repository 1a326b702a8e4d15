-- Regression: client:close() from inside poll left work going. A logger that closed the
-- client on an error made poll raise "the multi handle is closed"; a transport function of
-- the caller's that closed it on its first request still saw 4 more requests. After close,
-- nothing is sent and every call returns "closed".
local hostile = require "support.hostile"
local sandbox = require "support.sandbox"

local T = hostile.TASK

describe("client:close() from inside poll", function()
  it("from the transport function: no other request goes out", function()
    local c
    local t = hostile.transport({ function()
      c:close(); return { status = 503, headers = {}, body = "" }
    end })
    c = hostile.client(t.fn, { max_retries = 2 })
    local jobs = {}
    for i = 1, 5 do jobs[i] = assert(c:start_recall_update(T)) end
    local ok, left = pcall(c.poll, c, 0)
    assert.is_true(ok, tostring(left))
    assert.equal(0, left)
    assert.equal(1, t.calls)
    for i = 1, 5 do
      local _, err = jobs[i]:result()
      assert.equal("closed", err.reason)
    end
    local res, err = c:recall_update(T)
    assert.is_nil(res)
    assert.equal("closed", err.reason)
    assert.equal(1, t.calls)
  end)

  it("from the transport function of a blocking call: its retries do not go out", function()
    local c
    local t = hostile.transport({ function()
      c:close(); return { status = 503, headers = {}, body = "" }
    end })
    c = hostile.client(t.fn, { max_retries = 3 })
    local res, err = c:recall_update(T)
    assert.is_nil(res)
    assert.equal("closed", err.reason)
    assert.equal(1, err.attempts)
    assert.is_true(err.sent)
    assert.equal(1, t.calls)
  end)

  describe("on the multi handle", function()
    local sb
    setup(function() sb = sandbox.start{} end)
    teardown(function() if sb then sb:stop() end end)

    it("from a logger on an error: poll does not raise, nothing more is sent", function()
      sb:reset()
      sb:fault{ count = 100, kind = "status", status = 503 }
      local c
      c = sb:client{ max_retries = 3, logger = function(level) if level ~= "info" then c:close() end end }
      local jobs = {}
      for i = 1, 4 do jobs[i] = assert(c:start_recall_update(T)) end
      hostile.within(10, function()
        while c:poll(0.05) > 0 do end
      end)
      local requests = sb:stats().requests
      assert.is_true(requests >= 1 and requests <= 4, requests .. " requests")
      for i = 1, 4 do
        local _, err = jobs[i]:result()
        assert.is_true(err.reason == "closed" or err.http_status == 503, tostring(err))
      end
      assert.equal(0, c:poll(0))
      local job, err = c:start_recall_update(T)
      assert.is_nil(job)
      assert.equal("closed", err.reason)
      assert.equal(requests, sb:stats().requests)
    end)

    it("from an on_done: the other jobs end closed, none calls back", function()
      sb:reset()
      sb:fault{ count = 100, kind = "delay", ms = 1000 }
      local c = sb:client()
      local calls = 0
      local others = {}
      for i = 1, 3 do
        others[i] = assert(c:start_recall_update(T, { on_done = function() calls = calls + 1 end }))
      end
      local closer = assert(c:start_recall_update(T, { on_done = function()
        calls = calls + 1; c:close()
      end }))
      c:poll(0.2)   -- all four go out, and are held
      closer:cancel()   -- its on_done runs in the next poll, and closes the client
      hostile.within(10, function() while c:poll(0.05) > 0 do end end)
      assert.equal(1, calls)
      for i = 1, 3 do
        local _, err = others[i]:result()
        assert.equal("closed", err.reason)
        assert.is_true(err.sent)
      end
    end)
  end)
end)
