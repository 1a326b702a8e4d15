-- examples/love (a headless LÖVE 11.4 game) and examples/event_loop.lua (a plain Lua loop):
-- both update tasks from a frame loop with client:poll(0), against a sandbox that holds each
-- answer 200 ms and answers one update 503 with Retry-After 1. Tests tagged #timing assert
-- generous bounds on elapsed time (valgrind leaves them out).
local sandbox = require "support.sandbox"

local q, ROOT = sandbox.shell_quote, sandbox.root
local HOLD = 0.2   -- seconds the sandbox holds each answer
local N = 24       -- updates the game starts at once

-- The environment a child gets: the sandbox's URL and account, no Lua paths of ours.
local function env(sb, extra)
  local parts = { "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT",
    "ITNIO_BASE_URL=" .. q(sb.http_url), "ITNIO_API_KEY=" .. q(sb.api_key),
    "ITNIO_API_SECRET=" .. q(sb.api_secret) }
  for k, v in pairs(extra or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  return table.concat(parts, " ")
end

-- The game's report: { updates = n, ok = n, ..., jobs = { { ok, attempts, started, ended, err } } }.
local function parse_report(text)
  local r = { jobs = {} }
  for line in text:gmatch("[^\n]+") do
    local i, status, attempts, started, ended, rest = line:match("^job (%d+) (%a+) (%d+) (%S+) (%S+) ?(.*)$")
    if i then
      r.jobs[tonumber(i)] = { ok = status == "ok", attempts = tonumber(attempts),
        started = tonumber(started), ended = tonumber(ended), err = rest }
    else
      local k, v = line:match("^([%w_]+) (%S+)$")
      if k then r[k] = tonumber(v) end
    end
  end
  return r
end

-- The most jobs that ended within any one window of `width` seconds.
local function most_ends_within(jobs, width)
  local ends = {}
  for _, j in ipairs(jobs) do ends[#ends + 1] = j.ended end
  table.sort(ends)
  local best, lo = 0, 1
  for hi = 1, #ends do
    while ends[hi] - ends[lo] > width do lo = lo + 1 end
    best = math.max(best, hi - lo + 1)
  end
  return best
end

describe("examples/love", function()
  local sb, run   -- run: the game's one run, { out, ok, report, stats }, made by the first test

  setup(function() sb = sandbox.start{ hold_ms = HOLD * 1000 } end)
  teardown(function() if sb then sb:stop() end end)

  local function game()
    if run then return run end
    local _, found = sandbox.run("command -v love")
    assert(found, "LÖVE is not installed (`love` is not on PATH): "
      .. "run tools/install-deps, which installs Debian's love package (LÖVE 11.4)")
    sb:reset()
    sb:fault{ count = 1, kind = "status", status = 503, retry_after = 1 }
    local path = os.tmpname()
    local out, ok = sandbox.run("cd " .. q(ROOT) .. " && " .. env(sb, {
        ITNIO_LOVE_UPDATES = tostring(N), ITNIO_LOVE_REPORT = path,
        SDL_VIDEODRIVER = "dummy", SDL_AUDIODRIVER = "dummy" })
      .. " timeout 60 love examples/love")
    local f = io.open(path, "rb")
    local text = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(path)
    run = { out = out, ok = ok, text = text, report = parse_report(text), stats = sb:stats() }
    return run
  end

  it("updates every task headless, one of them again after a 503 with Retry-After", function()
    local g = game()
    local why = "love's output:\n" .. g.out .. "\nreport:\n" .. g.text
    assert.is_true(g.ok, why)
    local r = g.report
    assert.equal(N, r.updates, why)
    assert.equal(N, r.ok, why)
    assert.equal(0, r.failed, why)
    assert.equal(N, #r.jobs, why)
    local retried = 0
    for _, j in ipairs(r.jobs) do
      assert.is_true(j.ok, why)
      assert.is_true(j.attempts == 1 or j.attempts == 2, why)
      if j.attempts == 2 then
        retried = retried + 1
        assert.is_true(j.ended - j.started >= 1, why)   -- it waited out Retry-After: 1
      end
    end
    assert.is_true(retried >= 1, why)
    assert.equal(N, g.stats.accepted)
    assert.equal(N + 1, g.stats.requests)
  end)

  it("overlaps the updates and keeps every frame's poll short #timing", function()
    local g = game()
    local r = g.report
    local why = "report:\n" .. g.text
    assert.is_true(g.ok, "love's output:\n" .. g.out)
    -- One after another, each answer 200 ms after the last, no two would end within 200 ms.
    -- (The intervals start when the game queued the job, all in love.load, so their overlap
    -- alone would say nothing: when the answers arrive tells whether requests ran at once.)
    assert.is_true(most_ends_within(r.jobs, HOLD) >= 10, why)
    assert.is_true(r.wall_s < N * HOLD, why)   -- one after another: >= (N + 1) * HOLD
    assert.is_true(g.stats.connections >= 10, "connections: " .. tostring(g.stats.connections))
    -- poll(0) never waits: not on the held answers, not on the Retry-After timer.
    assert.is_true(r.max_poll_ms < 20, why)
    assert.is_true(r.frames >= 10 * r.wall_s, why)   -- the game kept running its frames
  end)
end)

describe("examples/event_loop.lua", function()
  local sb
  setup(function() sb = sandbox.start{ hold_ms = HOLD * 1000 } end)
  teardown(function() if sb then sb:stop() end end)

  it("prints every update's result as it arrives and exits 0 when all succeeded", function()
    sb:fault{ count = 1, kind = "status", status = 503 }
    local lua = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
    local paths = "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path; "
      .. "package.cpath = 'build/" .. lua .. "/?.so;' .. package.cpath"
    local out, ok = sandbox.run("cd " .. q(ROOT) .. " && " .. env(sb, { ITNIO_UPDATES = "5" })
      .. " timeout 60 " .. lua .. " -e " .. q(paths) .. " examples/event_loop.lua")
    assert.is_true(ok, out)
    for i = 1, 5 do
      assert.truthy(out:find("update " .. i .. ": ok, code 0 after ", 1, true), out)
    end
    assert.truthy(out:find("after 2 attempt(s)", 1, true), out)
    assert.falsy(out:find("failed", 1, true), out)
    assert.truthy(out:find("5 of 5 updates succeeded", 1, true), out)
    assert.equal(5, sb:stats().accepted)
  end)
end)
