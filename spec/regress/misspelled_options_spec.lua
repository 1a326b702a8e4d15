-- Regression: misspelled options passed silently. itnio.new accepted timout = 1 and
-- max_retry = 5 without a word (the core already refused unknown task fields); the per-call
-- options did the same. itnio.new now answers nil, ConfigError naming the option and the
-- nearest known one; a call's options raise (a programming error), naming them too.
local itnio   = require "itnio"
local errors  = require "itnio.errors"
local hostile = require "support.hostile"

local BASE = { api_key = "k", api_secret = "s", base_url = "http://127.0.0.1:9" }
local function with(over)
  local t = {}
  for k, v in pairs(BASE) do t[k] = v end
  for k, v in pairs(over) do t[k] = v end
  return t
end

describe("misspelled options", function()
  local cases = {
    { { timout = 1 }, "unknown option 'timout' (did you mean 'timeout'?)" },
    { { max_retry = 5 }, "unknown option 'max_retry' (did you mean 'max_retries'?)" },
    { { Insecure = true }, "unknown option 'Insecure' (did you mean 'insecure'?)" },
    { { cafiel = "x" }, "unknown option 'cafiel' (did you mean 'cafile'?)" },
    { { colour = "blue" }, "unknown option 'colour'" },
    { { [1] = "x" }, "unknown option '[1]'" },
  }
  for _, case in ipairs(cases) do
    it("itnio.new refuses " .. case[2], function()
      local c, err = itnio.new(with(case[1]))
      assert.is_nil(c)
      assert.is_true(errors.is(err, errors.ConfigError))
      assert.equal(case[2], err.message)
    end)
  end

  it("names them all when there are several", function()
    local _, err = itnio.new(with{ timout = 1, max_retry = 5 })
    assert.equal("unknown option 'max_retry' (did you mean 'max_retries'?) and 1 more: timout", err.message)
  end)

  it("raises for a call's options", function()
    local c = hostile.client(hostile.transport{}.fn)
    local T = hostile.TASK
    local calls = {
      { "recall_update", function() return c:recall_update(T, { deadlin = 1 }) end, "deadline" },
      { "prepare_recall_update", function() return c:prepare_recall_update(T, { passtrough = true }) end,
        "passthrough" },
      { "start_recall_update", function() return c:start_recall_update(T, { ondone = print }) end,
        "on_done" },
      { "batch_recall_update", function() return c:batch_recall_update({ T }, { concurency = 2 }) end,
        "concurrency" },
    }
    for _, call in ipairs(calls) do
      local ok, why = pcall(call[2])
      assert.is_false(ok, call[1])
      assert.truthy(tostring(why):find("bad argument #2 to '" .. call[1] .. "'", 1, true), why)
      assert.truthy(tostring(why):find("did you mean '" .. call[3] .. "'", 1, true), why)
    end
    assert.equal(0, c:poll(0))
  end)

  it("raises for the builders' options too", function()
    local recall = require "itnio.recall"
    local ok, why = pcall(recall.task, 299, { intervall = 30 })
    assert.is_false(ok)
    assert.truthy(tostring(why):find("bad argument #2 to 'recall.task'", 1, true), why)
    assert.truthy(tostring(why):find("did you mean 'interval'", 1, true), why)
  end)
end)
