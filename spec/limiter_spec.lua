-- The client's rate limit (itnio.new{ rate, burst }): the bucket's arithmetic on a clock the
-- spec sets, its options, and every path that waits for it (the blocking call, jobs, the
-- batch) against the sandbox. Inside nginx: spec/ngx_spec.lua. Tests tagged #timing assert
-- generous bounds on elapsed time (valgrind leaves them out).
local itnio   = require "itnio"
local errors  = require "itnio.errors"
local limiter = require "itnio.internal.limiter"
local core    = require "itnio.core"
local sandbox = require "support.sandbox"

local function task() return sandbox.task("Paced") end

describe("itnio.limiter", function()
  it("lets burst attempts go at once, then one every 1/rate seconds", function()
    local lim = limiter.new(10, 3)
    local t = 1000
    assert.equal(0, lim:reserve(t))
    assert.equal(0, lim:reserve(t))
    assert.equal(0, lim:reserve(t))
    assert.near(0.1, lim:reserve(t), 1e-9)
    assert.near(0.2, lim:reserve(t), 1e-9)
    -- a quiet second fills the bucket again, and no more than full
    t = t + 10
    for _ = 1, 3 do assert.equal(0, lim:reserve(t)) end
    assert.near(0.1, lim:reserve(t), 1e-9)
  end)

  it("books slots in turn, so that waiting callers go evenly at rate", function()
    local lim = limiter.new(4)   -- burst 1
    local waits = {}
    for i = 1, 5 do waits[i] = lim:reserve(50) end
    assert.are.same({ 0, 0.25, 0.5, 0.75, 1 }, waits)
    -- an attempt that comes when its slot is due waits nothing
    assert.equal(0, limiter.new(4):reserve(0))
    local l2 = limiter.new(4)
    l2:reserve(0)
    assert.equal(0, l2:reserve(0.25))
    assert.near(0.25, l2:reserve(0.25), 1e-9)
  end)

  it("keeps its state in a store of the caller's: one number, through get and set", function()
    local box = { n = nil }
    local store = { get = function() return box.n end, set = function(_, v) box.n = v end }
    local a, b = limiter.new(2, 1, store), limiter.new(2, 1, store)
    assert.equal(0, a:reserve(7))
    assert.near(0.5, b:reserve(7), 1e-9)   -- two limiters, one limit
    assert.near(8, box.n, 1e-9)
  end)

  it("refuses what is not a rate or a burst", function()
    for _, bad in ipairs{ { 0 }, { -1 }, { 0 / 0 }, { math.huge }, { "5" }, { 1, 0 }, { 1, 1.5 },
                          { 1, "2" }, { 1, math.huge }, { 1, -3 } } do
      assert.is_string(limiter.check(bad[1], bad[2]))
      assert.has_error(function() limiter.new(bad[1], bad[2]) end)
    end
    assert.is_nil(limiter.check(0.5))
    assert.is_nil(limiter.check(1000, 20))
    assert.matches("5 a second, burst 2", tostring(limiter.new(5, 2)))
  end)
end)

describe("itnio.new{ rate, burst }", function()
  local base = { api_key = "k", api_secret = "s", base_url = "http://127.0.0.1:9" }
  local function new(over)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(over) do o[k] = v end
    return itnio.new(o)
  end

  it("is a ConfigError for a rate not above 0, a burst not a whole number from 1, "
    .. "or a burst alone", function()
    for _, bad in ipairs{ { rate = 0 }, { rate = -2 }, { rate = "10" }, { rate = 0 / 0 }, { rate = true },
                          { rate = 5, burst = 0 }, { rate = 5, burst = 2.5 }, { rate = 5, burst = "3" },
                          { burst = 3 } } do
      local c, err = new(bad)
      assert.is_nil(c)
      assert.is_true(errors.is(err, errors.ConfigError))
      assert.matches(bad.rate == nil and "burst needs a rate" or (bad.burst and "burst" or "rate"),
                     err.message)
    end
    assert.truthy(new{ rate = 0.5 })
    assert.truthy(new{ rate = 100, burst = 10 })
  end)
end)

describe("the rate limit against the sandbox", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("paces blocking calls: ten at 20 a second take at least 0.45 s; "
    .. "waited says how long each waited #timing", function()
    local c = sb:client{ rate = 20 }
    local t0, total = core.now(), 0
    for i = 1, 10 do
      local res, err = c:recall_update(task())
      assert.is_nil(err)
      assert.is_number(res.waited)
      if i == 1 then assert.equal(0, res.waited) end
      total = total + res.waited
    end
    local took = core.now() - t0
    assert.is_true(took >= 0.45 * 0.98, "took " .. took)
    assert.is_true(took < 3, "took " .. took)
    assert.is_true(total > 0.2 and total <= took, "waited " .. total)
    assert.equal(10, sb:stats().accepted)
  end)

  it("has no waited without a rate limit", function()
    local res = assert(sb:client():recall_update(task()))
    assert.is_nil(res.waited)
  end)

  it("paces retries too, and says on the error how long the call waited #timing", function()
    sb:fault{ kind = "status", status = 503, count = 100 }
    local c = sb:client{ rate = 10, max_retries = 2, backoff_base = 0, backoff_cap = 0 }
    local t0 = core.now()
    local res, err = c:recall_update(task())
    local took = core.now() - t0
    assert.is_nil(res)
    assert.equal(503, err.http_status)
    assert.equal(3, err.attempts)
    assert.is_true(took >= 0.2 * 0.98, "three attempts at 10 a second took " .. took)
    assert.is_true(err.waited > 0.1, "waited " .. tostring(err.waited))
    assert.equal(3, sb:stats().requests)
  end)

  it("ends a call whose deadline comes before its slot, having waited until the deadline #timing", function()
    local c = sb:client{ rate = 1 }
    assert(c:recall_update(task()))
    local t0 = core.now()
    local res, err = c:recall_update(task(), { deadline = 0.2 })
    local took = core.now() - t0
    assert.is_nil(res)
    assert.equal("deadline", err.reason)
    assert.is_true(err.retryable)
    assert.is_false(err.sent)
    assert.is_true(took >= 0.18 and took < 0.8, "took " .. took)
    assert.is_true(err.waited >= 0.18 and err.waited < 0.8, "waited " .. err.waited)
    assert.equal(1, sb:stats().requests)
  end)

  it("paces jobs on a timer: poll(0) never blocks while they wait for their slots #timing", function()
    local c = sb:client{ rate = 40 }
    local jobs = {}
    for i = 1, 20 do jobs[i] = assert(c:start_recall_update(task())) end
    local t0, slowest = core.now(), 0
    while true do
      local p0 = core.now()
      local left = c:poll(0)
      slowest = math.max(slowest, core.now() - p0)
      if left == 0 then break end
      assert.is_true(core.now() - t0 < 10, "jobs still running")
      core.sleep(0.002)
    end
    local took = core.now() - t0
    assert.is_true(took >= 19 / 40 * 0.98, "took " .. took)
    assert.is_true(slowest < 0.05, "a poll(0) took " .. slowest)
    local waited = 0
    for _, job in ipairs(jobs) do
      local res = assert(job:result())
      waited = waited + res.waited
    end
    assert.is_true(waited > 1, "the jobs waited " .. waited .. " s in all")
    assert.equal(20, sb:stats().accepted)
  end)

  it("poll with a timeout sleeps until the next slot rather than spinning #timing", function()
    local c = sb:client{ rate = 5 }
    for _ = 1, 3 do assert(c:start_recall_update(task())) end
    local c0, t0 = os.clock(), core.now()
    while c:poll(1) > 0 do end
    local cpu, took = os.clock() - c0, core.now() - t0
    assert.is_true(took >= 0.4 * 0.98, "took " .. took)
    assert.is_true(cpu < took / 4, ("%.3f s of CPU in %.3f s"):format(cpu, took))
  end)

  it("a cancelled job that waited for its slot ends cancelled, and the next job goes", function()
    local c = sb:client{ rate = 2 }
    local a = assert(c:start_recall_update(task()))
    local b = assert(c:start_recall_update(task()))
    c:poll(0)                       -- a goes; b books the next slot
    assert.is_true(b:cancel())
    while c:poll(0.05) > 0 do end
    assert.truthy((a:result()))
    local _, err = b:result()
    assert.equal("cancelled", err.reason)
    assert.is_number(err.waited)
    local d = assert(c:start_recall_update(task()))
    while c:poll(0.05) > 0 do end
    assert.truthy((d:result()))
  end)

  it("closing the client ends a job that waits for its slot", function()
    local c = sb:client{ rate = 1 }
    assert(c:start_recall_update(task()))
    local b = assert(c:start_recall_update(task()))
    c:poll(0.5)
    c:close()
    assert.is_true(b:done())
    assert.equal("closed", select(2, b:result()).reason)
  end)

  it("paces the batch: 12 tasks at 30 a second and concurrency 6 take at least 0.36 s #timing", function()
    local c = sb:client{ rate = 30 }
    local tasks = {}
    for i = 1, 12 do tasks[i] = task() end
    local t0 = core.now()
    local results = c:batch_recall_update(tasks, { concurrency = 6 })
    local took = core.now() - t0
    for i = 1, 12 do assert.is_number(assert(results[i].res).waited) end
    assert.is_true(took >= 11 / 30 * 0.98, "took " .. took)
    assert.equal(12, sb:stats().accepted)
  end)

  it("lets a burst through at once", function()
    local c = sb:client{ rate = 1, burst = 4 }
    local t0 = core.now()
    for _ = 1, 4 do
      local res = assert(c:recall_update(task()))
      assert.equal(0, res.waited)
    end
    assert.is_true(core.now() - t0 < 0.9)
  end)
end)
