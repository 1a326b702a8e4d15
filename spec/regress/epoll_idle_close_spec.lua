-- Regression guard for the epoll backend's lazy set (csrc/events.c): a socket libcurl forgets
-- (a kept-alive connection back in its pool) stays in the epoll set until it gives an event
-- nobody wants. When the server then closes that idle connection, the event must take it out
-- once (not wake every wait after: a poll that spins), and the next request, on a new socket
-- that may well reuse the number, must be watched (not wait for its timeout).
local sandbox = require "support.sandbox"

describe("an idle kept-alive connection the server closes", function()
  local sb
  setup(function() sb = sandbox.start{ keepalive_timeout = 1 } end)
  teardown(function() if sb then sb:stop() end end)

  it("neither makes poll spin nor keeps the next job from being watched #timing", function()
    local core = require "itnio.core"
    local c = sb:client{ timeout = 5 }
    -- two connections in the pool; then one job held 2 s on one of them, while the server
    -- closes the other, idle one, after 1 s
    local a = assert(c:start_recall_update(sandbox.task("first")))
    local b = assert(c:start_recall_update(sandbox.task("second")))
    while c:poll(0.5) > 0 do end
    assert(a:result())
    assert(b:result())
    sb:fault{ kind = "delay", ms = 2000, count = 1 }
    local cpu0, t0 = os.clock(), core.now()
    local held = assert(c:start_recall_update(sandbox.task("held")))
    while c:poll(0.2) > 0 do end
    local cpu, wall = os.clock() - cpu0, core.now() - t0
    assert(held:result())
    assert.is_true(cpu < 0.3 * wall, ("%.3f s of CPU over %.3f s of waiting"):format(cpu, wall))
    -- the pool's sockets are gone now: the next job opens a new one (its number may be an old
    -- one's) and must be watched
    core.sleep(1.2)
    t0 = core.now()
    local next = assert(c:start_recall_update(sandbox.task("next")))
    while c:poll(0.2) > 0 do end
    local res, err = next:result()
    assert(res, tostring(err))
    assert.is_true(core.now() - t0 < 2, "the next job took " .. (core.now() - t0) .. " s")
    c:close()
  end)
end)
