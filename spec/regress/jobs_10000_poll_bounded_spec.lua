-- Regression: 10,000 jobs made one poll(0) take 3 to 4.6 s (every transfer went onto the
-- multi handle at once, and libcurl's bookkeeping grows with the square of its transfers),
-- and jobs started with deadline = 2 ended 4.8 to 5.7 s after the start. Transfers are now
-- admitted in slices (at most 256 on the wire), and deadlines are timers of their own: a
-- poll(0) stays short whatever the number of jobs, and each job ends at its deadline.
-- Bounds are generous (the machine is shared); the old code missed them by seconds.
local sandbox = require "support.sandbox"
local hostile = require "support.hostile"
local core    = require "itnio.core"

describe("10,000 jobs on a server that never answers in time #timing", function()
  local sb
  setup(function() sb = sandbox.start{ hold_ms = 10000 } end)
  teardown(function() if sb then sb:stop() end end)

  it("poll(0) stays short, and every job ends at its deadline", function()
    local c = sb:client{ max_retries = 0 }
    local N, DEADLINE = 10000, 2
    local t0 = core.now()
    local jobs = {}
    for i = 1, N do jobs[i] = assert(c:start_recall_update(hostile.TASK, { deadline = DEADLINE })) end
    local worst, polls = 0, 0
    local left = N
    while left > 0 do
      local p0 = core.now()
      left = c:poll(0)
      local took = core.now() - p0
      if took > worst then worst = took end
      polls = polls + 1
      assert(core.now() - t0 < 15, "jobs still running after 15 s")
      core.sleep(0.005)
    end
    local ended = core.now() - t0
    assert.is_true(worst < 0.25, ("the longest poll(0) took %.3f s"):format(worst))
    assert.is_true(ended < DEADLINE * 1.2 + 0.5, ("the last job ended %.2f s after the start"):format(ended))
    local reasons = {}
    for i = 1, N do
      local _, err = jobs[i]:result()
      reasons[err.reason] = (reasons[err.reason] or 0) + 1
    end
    assert.same({ deadline = N }, reasons)
    assert.is_true(polls > 20)
  end)
end)
