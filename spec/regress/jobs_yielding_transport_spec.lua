-- Regression: hosts that run poll inside a coroutine, with a transport function that yields
-- (it waits on the host's own event loop), lost jobs or revived them:
-- * when the host abandoned the coroutine, the other jobs never ran: step had swapped the
--   timer list into a local before it started them;
-- * a job cancelled while its attempt was parked, whose transport then answered 503, was
--   rescheduled: it sent twice more, on_done ran twice, the count went to -1, and
--   job:result() changed from "cancelled" to HttpError.
-- A job that has ended stays ended, and the count never goes negative. Plain Lua 5.1 cannot
-- yield across pcall: there the yield is an error of the transport, and the job ends with it.
local hostile = require "support.hostile"

local T = hostile.TASK
local YIELDS = hostile.pcall_yields()

-- A transport that yields (waiting for the host to resume it with an answer) on the calls
-- listed in `park`, and answers 200 at once otherwise.
local function parking(park)
  local t = { calls = 0 }
  function t.fn()
    t.calls = t.calls + 1
    if park[t.calls] then return coroutine.yield("parked") end
    return { status = 200, headers = {}, body = '{"code":0}' }
  end
  return t
end

describe("a transport that yields, with poll in a coroutine", function()
  it("the other jobs still run when the host abandons the coroutine", function()
    local t = parking{ [1] = true }
    local c = hostile.client(t.fn)
    local jobs = {}
    for i = 1, 4 do jobs[i] = assert(c:start_recall_update(T)) end
    local co = coroutine.create(function() return c:poll(0) end)
    local ok, what = coroutine.resume(co)
    assert.is_true(ok, tostring(what))
    co = nil   -- luacheck: ignore (abandoned: never resumed)
    collectgarbage()
    local left = c:poll(0)
    if YIELDS then
      assert.equal("parked", what)
      assert.equal(1, left)   -- the parked one
      for i = 2, 4 do assert.truthy(jobs[i]:result()) end
      assert.is_false(jobs[1]:done())
      assert.is_true(jobs[1]:cancel())
      local _, err = jobs[1]:result()
      assert.equal("cancelled", err.reason)
      assert.equal(0, c:poll(0))
    else
      assert.equal(0, left)
      local _, err = jobs[1]:result()
      assert.equal("TransportError", err.kind)
      for i = 2, 4 do assert.truthy(jobs[i]:result()) end
    end
    assert.equal(4, t.calls)
  end)

  it("a job cancelled while parked stays cancelled when its transport answers later", function()
    if not YIELDS then return end   -- (5.1: nothing can park; the test above covers it)
    local t = parking{ [1] = true }
    local c = hostile.client(t.fn, { max_retries = 3 })
    local calls = 0
    local job = assert(c:start_recall_update(T, { on_done = function() calls = calls + 1 end }))
    local co = coroutine.create(function() return c:poll(0) end)
    assert.equal("parked", select(2, coroutine.resume(co)))
    assert.is_true(job:cancel())
    assert.equal(0, c:poll(0))   -- delivers the cancelled job's on_done
    assert.equal(1, calls)
    local ok, left = coroutine.resume(co, { status = 503, headers = {}, body = "busy" })
    assert.is_true(ok, tostring(left))
    assert.equal(0, left)
    for _ = 1, 5 do assert.equal(0, c:poll(0.01)) end
    assert.equal(1, t.calls)
    assert.equal(1, calls)
    local _, err = job:result()
    assert.equal("cancelled", err.reason)
    assert.is_true(err.sent)
  end)

  it("a deadline ends a parked job, and its late answer is dropped", function()
    if not YIELDS then return end
    local t = parking{ [1] = true }
    local c = hostile.client(t.fn)
    local job = assert(c:start_recall_update(T, { deadline = 0.1 }))
    local co = coroutine.create(function() return c:poll(0) end)
    coroutine.resume(co)
    hostile.within(5, function() while c:poll(0.02) > 0 do end end)
    local _, err = job:result()
    assert.equal("deadline", err.reason)
    coroutine.resume(co, { status = 200, headers = {}, body = '{"code":0}' })
    assert.equal("deadline", select(2, job:result()).reason)
    assert.equal(0, c:poll(0))
  end)
end)
