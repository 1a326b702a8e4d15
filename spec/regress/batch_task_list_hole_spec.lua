-- Regression: a task list with a hole or a non-table entry raised halfway through the batch.
-- With {T,T,T,T,T,nil,T} at concurrency 1, five tasks were sent, then the batch raised "bad
-- argument #1 (table expected, got nil)", and the outcomes of the five were lost. The list
-- is now checked before anything is sent, with an error that names the index.
local hostile = require "support.hostile"

local T = hostile.TASK

describe("batch_recall_update with a list that is not a list of tasks", function()
  local cases = {
    { "a hole", { T, T, T, T, T, nil, T }, "tasks%[6%] is nil" },
    { "a string", { T, T, "T", T }, "tasks%[3%] is a string" },
    { "a number first", { 5, T }, "tasks%[1%] is a number" },
    { "a hole after a gap of keys", { [1] = T, [2] = T, [9] = T }, "tasks%[3%] is nil" },
    { "a lone far index", { [100] = T }, "tasks%[1%] is nil" },
  }
  for _, case in ipairs(cases) do
    it("raises before sending anything: " .. case[1], function()
      local t = hostile.transport{}
      local c = hostile.client(t.fn)
      local ok, why = pcall(c.batch_recall_update, c, case[2], { concurrency = 1 })
      assert.is_false(ok)
      assert.truthy(tostring(why):find("bad argument #1 to 'batch_recall_update'", 1, true), why)
      assert.truthy(tostring(why):find(case[3]), why)
      assert.equal(0, t.calls)
      assert.equal(0, c:poll(0))
    end)
  end

  it("takes keys that are not positive whole numbers as no task (table.pack's n)", function()
    local t = hostile.transport{}
    local c = hostile.client(t.fn)
    local results = c:batch_recall_update({ T, T, n = 2, [0] = "zero", [1.5] = "half" })
    assert.equal(2, #results)
    assert.equal(2, t.calls)
  end)
end)
