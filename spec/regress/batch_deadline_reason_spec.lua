-- Regression: the task in flight when a deadline passed ended with reason "timeout" (the
-- attempt's timeout had been cut to the deadline, and libcurl reported a timeout), not
-- "deadline" as the docs say (doc/event-loops.md). A deadline's error is worth retrying later
-- (retryable), and is not retried by the call itself.
local sandbox = require "support.sandbox"
local hostile = require "support.hostile"

describe("a deadline that passes during an attempt", function()
  local sb
  setup(function() sb = sandbox.start{ hold_ms = 3000 } end)
  teardown(function() if sb then sb:stop() end end)

  it("ends the batch's tasks in flight with reason deadline", function()
    local c = sb:client{ max_retries = 2 }
    local results = c:batch_recall_update({ hostile.TASK, hostile.TASK, hostile.TASK },
                                          { concurrency = 2, deadline = 0.5 })
    for i = 1, 3 do
      local err = results[i].err
      assert.equal("deadline", err.reason, tostring(err))
      assert.is_true(err.retryable)
    end
    assert.equal(1, results[1].err.attempts)
    assert.is_true(results[1].err.sent)
    assert.truthy(results[1].err.message:find("during attempt 1", 1, true), results[1].err.message)
  end)

  it("ends a blocking call and a job the same way", function()
    local c = sb:client{ max_retries = 2 }
    local _, err = c:recall_update(hostile.TASK, { deadline = 0.4 })
    assert.equal("deadline", err.reason, tostring(err))
    assert.equal(1, err.attempts)
    local job = assert(c:start_recall_update(hostile.TASK, { deadline = 0.4 }))
    while c:poll(0.05) > 0 do end
    local _, jerr = job:result()
    assert.equal("deadline", jerr.reason, tostring(jerr))
  end)

  it("keeps timeout for an attempt that timed out on the client's own timeout", function()
    local c = sb:client{ max_retries = 0, timeout = 0.3 }
    local _, err = c:recall_update(hostile.TASK, { deadline = 5 })
    assert.equal("timeout", err.reason, tostring(err))
  end)
end)
