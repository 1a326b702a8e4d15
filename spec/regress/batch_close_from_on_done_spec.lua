-- Regression: client:close() from a batch's on_done hung batch_recall_update forever at 100%
-- CPU. close ended the jobs in flight without their callbacks, so the batch's count of
-- active jobs never dropped, and poll returned at once, again and again.
local hostile = require "support.hostile"

local T = hostile.TASK

describe("client:close() from a batch's on_done", function()
  it("ends the batch: the settled tasks keep their outcome, the others are closed", function()
    local t = hostile.transport({ "ok" }, "503")   -- 200, then 503 for ever
    local c = hostile.client(t.fn, { max_retries = 2 })
    local calls = 0
    local results = hostile.within(10, function()
      return c:batch_recall_update({ T, T, T }, { concurrency = 2, on_done = function()
        calls = calls + 1
        c:close()
      end })
    end)
    assert.equal(3, #results)
    assert.equal(1, calls)   -- no callback after close
    assert.equal(0, results[1].res.code)
    for i = 2, 3 do assert.equal("closed", results[i].err.reason, tostring(results[i].err)) end
    local sent = t.calls
    assert.equal(0, c:poll(0))
    assert.equal(sent, t.calls)   -- nothing leaves after close
  end)

  it("ends the batch when the callback of its last task closes the client", function()
    local c = hostile.client(hostile.transport{}.fn)
    local results = hostile.within(10, function()
      return c:batch_recall_update({ T, T }, { concurrency = 1, on_done = function(_, _, i)
        if i == 2 then c:close() end
      end })
    end)
    assert.equal(0, results[1].res.code)
    assert.equal(0, results[2].res.code)
  end)
end)
