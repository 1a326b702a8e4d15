-- Regression: an on_done callback that raised an error value that cannot be printed (a table
-- whose __tostring raises, or under 5.4 returns a table) escaped poll: the message was built
-- with tostring(why) outside the pcall. poll raised, the later callbacks of that poll never
-- ran, and a batch raised and left its started jobs on the client.
local hostile = require "support.hostile"

local T = hostile.TASK

describe("an on_done that raises what cannot be printed", function()
  for _, case in ipairs{ { "a __tostring that raises", hostile.unprintable },
                         { "a __tostring that returns a table", hostile.tabular },
                         { "nil", function() return nil end } } do
    it("does not break poll or the other callbacks: " .. case[1], function()
      local lines = {}
      local c = hostile.client(hostile.transport{}.fn,
        { logger = function(level, msg) lines[#lines + 1] = level .. " " .. msg end })
      local ran = {}
      for i = 1, 4 do
        assert(c:start_recall_update(T, { on_done = function()
          ran[#ran + 1] = i
          if i % 2 == 1 then error(case[2]()) end
        end }))
      end
      local ok, left = pcall(c.poll, c, 0)
      assert.is_true(ok, tostring(left))
      assert.equal(0, left)
      assert.same({ 1, 2, 3, 4 }, ran)
      local said = 0
      for _, l in ipairs(lines) do if l:find("on_done callback raised", 1, true) then said = said + 1 end end
      assert.equal(2, said, table.concat(lines, "\n"))
    end)

    it("does not break the batch: every task has its result, no job is left: " .. case[1], function()
      local c = hostile.client(hostile.transport{}.fn, { logger = function() end })
      local ok, results = pcall(c.batch_recall_update, c, { T, T, T, T }, { concurrency = 2,
        on_done = function(_, _, i) if i ~= 4 then error(case[2]()) end end })
      assert.is_true(ok, tostring(results))
      assert.equal(4, #results)
      for i = 1, 4 do assert.equal(0, results[i].res.code) end
      assert.equal(0, c:poll(0))
    end)
  end
end)
