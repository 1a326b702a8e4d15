-- Regression (found by fuzz/fuzz_multi.c): the multi handle's queue of finished transfers only
-- went back to its start when next_done emptied it. A caller that never drained it (as a job
-- loop that takes one and adds one may) pushed its end past the array: a heap overflow in
-- harvest (ASan), "double free or corruption" in a plain build. The window now slides down.
local core = require "itnio.core"

describe("regress: the multi handle's finished queue", function()
  local function settle(m)
    for _ = 1, 200 do
      if m:perform() == 0 then return end
      m:wait(0.01)
    end
    error("transfers to a closed port did not end")
  end

  it("never runs past its array when it is never drained", function()
    local m = core.multi_new{}
    for _ = 1, 9 do m:add("GET", "http://127.0.0.1:1/", {}) end
    settle(m)
    local seen = 0
    for _ = 1, 200 do   -- one taken, one added: the queue never runs dry
      local id = m:next_done()
      assert.truthy(id)
      local status, err = m:take(id)
      assert.is_nil(status)
      assert.equal("connect", err.reason)
      seen = seen + 1
      m:add("GET", "http://127.0.0.1:1/", {})
      settle(m)
    end
    local left = 0
    while m:next_done() do left = left + 1 end
    assert.equal(200, seen)
    assert.equal(9, left)
    m:close()
  end)
end)
