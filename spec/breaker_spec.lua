-- The circuit breaker (itnio.new{ breaker = { failures, cooldown } }) against the sandbox: it
-- opens after that many failures in a row worth retrying, fails calls at once without the
-- network, lets one trial go after the cooldown, and closes or opens again on its outcome.
-- Across nginx workers (shared_dict): spec/fleet_spec.lua. Tests tagged #timing assert
-- generous bounds on elapsed time.
local errors  = require "itnio.errors"
local core    = require "itnio.core"
local sandbox = require "support.sandbox"

local function task() return sandbox.task("Breaker") end

describe("the circuit breaker", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  local function client(over)
    local o = { max_retries = 0, breaker = { failures = 3, cooldown = 0.3 } }
    for k, v in pairs(over or {}) do o[k] = v end
    return sb:client(o)
  end

  it("opens after that many failures in a row, counted across calls, and fails fast #timing", function()
    sb:fault{ kind = "status", status = 503, count = 100 }
    local c = client()
    for _ = 1, 3 do
      local _, err = c:recall_update(task())
      assert.equal("HttpError", err.kind)
    end
    assert.equal(3, sb:stats().requests)
    local t0 = core.now()
    local _, err = c:recall_update(task())
    assert.is_true(core.now() - t0 < 0.05)
    assert.is_true(errors.is(err, errors.CircuitOpenError))
    assert.is_true(err.retryable)
    assert.is_false(err.sent)
    assert.is_true(err.retry_after > 0 and err.retry_after <= 0.3, tostring(err.retry_after))
    assert.matches("circuit breaker is open", tostring(err))
    assert.equal(3, sb:stats().requests)   -- nothing went out
  end)

  it("counts the retries of one call as failures in a row", function()
    sb:fault{ kind = "code", code = -18, count = 100 }
    local c = client{ max_retries = 5, backoff_base = 0, backoff_cap = 0 }
    local _, err = c:recall_update(task())
    assert.is_true(errors.is(err, errors.CircuitOpenError), tostring(err))
    assert.equal(3, sb:stats().requests)
  end)

  it("is reset by an answer that is not worth retrying", function()
    local c = client()
    sb:fault{ kind = "status", status = 503, count = 2 }
    for _ = 1, 2 do c:recall_update(task()) end
    sb:fault{ kind = "code", code = -22, msg = "no" }
    assert.equal("ParameterError", select(2, c:recall_update(task())).kind)
    sb:fault{ kind = "status", status = 503, count = 2 }
    for _ = 1, 2 do c:recall_update(task()) end
    assert(c:recall_update(task()))   -- two in a row only: it stayed closed
  end)

  it("lets one trial go after the cooldown: its success closes it #timing", function()
    sb:fault{ kind = "status", status = 503, count = 3 }
    local c = client()
    for _ = 1, 3 do c:recall_update(task()) end
    assert.is_true(errors.is(select(2, c:recall_update(task())), errors.CircuitOpenError))
    core.sleep(0.35)
    assert(c:recall_update(task()))   -- the trial
    assert(c:recall_update(task()))
    assert.equal(5, sb:stats().requests)
  end)

  it("opens again when the trial fails #timing", function()
    sb:fault{ kind = "status", status = 503, count = 4 }
    local c = client()
    for _ = 1, 3 do c:recall_update(task()) end
    core.sleep(0.35)
    assert.equal("HttpError", select(2, c:recall_update(task())).kind)   -- the trial, failed
    assert.is_true(errors.is(select(2, c:recall_update(task())), errors.CircuitOpenError))
    assert.equal(4, sb:stats().requests)
  end)

  it("lets one trial at a time: jobs during a trial fail fast #timing", function()
    sb:fault{ kind = "status", status = 503, count = 3 }
    local c = client()
    for _ = 1, 3 do c:recall_update(task()) end
    core.sleep(0.35)
    sb:fault{ kind = "delay", ms = 300 }
    local a = assert(c:start_recall_update(task()))
    local b = assert(c:start_recall_update(task()))
    while c:poll(0.05) > 0 do end
    assert.truthy((a:result()))
    assert.is_true(errors.is(select(2, b:result()), errors.CircuitOpenError))
  end)

  it("fails a batch's tasks fast once open", function()
    sb:fault{ kind = "status", status = 503, count = 100 }
    local c = client()
    local tasks = {}
    for i = 1, 20 do tasks[i] = task() end
    local results = c:batch_recall_update(tasks, { concurrency = 2 })
    local open = 0
    for _, r in ipairs(results) do
      if errors.is(r.err, errors.CircuitOpenError) then open = open + 1 end
    end
    assert.is_true(open >= 15, open .. " tasks failed fast")
    assert.is_true(sb:stats().requests <= 5, sb:stats().requests .. " requests")
  end)

  it("refuses options that are not a breaker", function()
    for _, bad in ipairs{ true, {}, { failures = 0, cooldown = 1 }, { failures = 2.5, cooldown = 1 },
                          { failures = 3 }, { failures = 3, cooldown = 0 }, { failures = 3, cooldown = "1" },
                          { failures = 3, cooldown = 1, extra = 1 } } do
      local c, err = require("itnio").new{ api_key = "k", api_secret = "s", breaker = bad }
      assert.is_nil(c)
      assert.is_true(errors.is(err, errors.ConfigError))
      assert.matches("breaker", err.message)
    end
  end)
end)
