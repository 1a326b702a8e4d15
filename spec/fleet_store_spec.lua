-- A fleet on one account with a store (itnio.new{ store }): machines stood in for by three
-- nginx instances of two workers each (each its own lua_shared_dict, the machine's fallback),
-- plain Lua processes and campaigns (bin/itnio --batch --store), against the sandbox, which
-- times each request's arrival, and a redis-server of the spec's own. The rate holds for the
-- fleet (within 5%, never more than rate + burst + 1 in a second), one -16 teaches the fleet
-- the clock, one breaker opens for all and lets one trial through, the retry budget is one;
-- and when Redis is stopped, killed, flushed of its scripts or refuses the password, or one
-- machine cannot reach the vendor, every call still ends for the vendor's reasons alone, the
-- fleet stays between half and 1.2 times the rate, and no call waits past the store's timeout
-- because of it. Tests tagged #timing assert generous bounds on elapsed time.
local cjson    = require "cjson"
local core     = require "itnio.core"
local sandbox  = require "support.sandbox"
local nginx    = require "support.nginx"
local shell    = require "support.shell"
local redis    = require "support.redis"
local arrivals = require "support.arrivals"

local q, ROOT = shell.quote, shell.root
local read, write = shell.read, shell.write

local RATE = 50
local TIMEOUT = 0.1   -- the store's (store_timeout)

describe("a fleet on one account with a store", function()
  local r, sb, srv, dir = nil, nil, {}, nil

  setup(function()
    r = redis.start{ password = "fleet-St0re-pw" }
    sb = sandbox.start{}
    for i = 1, 3 do
      srv[i] = nginx.start{
        workers = 2, reuseport = true,
        http = "lua_shared_dict itnio_fleet 1m;",
        server = [[location /fleet/ { content_by_lua_block { require("support.fleet_cases").run() } }]],
      }
    end
  end)
  teardown(function()
    for _, s in ipairs(srv) do s:stop() end
    if sb then sb:stop() end
    if r then r:stop() end
  end)
  before_each(function()
    sb:reset()
    r:cli("FLUSHALL")
    for _, s in ipairs(srv) do assert.equal(200, (s:get("/fleet/flush"))) end
    dir = shell.tmpdir()
  end)
  after_each(function() shell.run("rm -rf " .. q(dir)) end)

  local function args(over)
    local a = { base = sb.http_url, key = sb.api_key, secret = sb.api_secret, store = r.url,
                store_timeout = TIMEOUT }
    for k, v in pairs(over or {}) do a[k] = v end
    return a
  end

  -- The members of a run, each a shell command that writes its answer to dir/<i>.out and
  -- marks its end with dir/<i>.done: requests to an nginx, plain Lua processes, campaigns.
  local function on_nginx(i, case, over)
    return function(out)
      return "curl -s --max-time 60 " .. q(srv[i].url .. "/fleet/" .. case .. "?" .. nginx.query(args(over)))
        .. " > " .. q(out)
    end
  end
  local function in_process(case, over)
    return function(out)
      local parts = { "cd " .. q(ROOT) .. " && LUA_CPATH=" .. q(ROOT .. "/build/lua5.4/?.so;;"),
                      "lua5.4 spec/support/fleet_process.lua", case }
      for k, v in pairs(args(over)) do parts[#parts + 1] = q(k .. "=" .. tostring(v)) end
      return table.concat(parts, " ") .. " > " .. q(out)
    end
  end
  local function campaign(lines, over)
    return function(out)
      local from = 9000 + math.random(0, 900) * 100
      sb:seed(from, from + lines - 1)
      local t = {}
      for i = 1, lines do
        t[i] = ('{"keyId":%d,"recallType":0,"recallInterval":30,"recallNum":1,"nodeList":[{"source":3,'
          .. '"text":"From a fleet","lan":"en-US","hangUpSms":0,"toSeat":0}]}'):format(from + i - 1)
      end
      local file = out .. ".jsonl"
      write(file, table.concat(t, "\n") .. "\n")
      local a = args(over)
      return "env ITNIO_API_KEY=" .. q(a.key) .. " ITNIO_API_SECRET=" .. q(a.secret)
        .. " ITNIO_BASE_URL=" .. q(a.base) .. " ITNIO_STORE=" .. q(a.store)
        .. " lua5.4 " .. q(ROOT .. "/bin/itnio") .. " recall-update --batch " .. q(file)
        .. " --rate " .. tostring(a.rate) .. " --no-progress > " .. q(out) .. " 2> " .. q(out .. ".err")
    end
  end

  -- Starts every member at once, in the background.
  local runs = 0
  local function launch(members)
    runs = runs + 1
    local cmds = {}
    for i, m in ipairs(members) do
      local out = dir .. "/" .. runs .. "-" .. i .. ".out"
      cmds[i] = "(" .. m(out) .. "; echo $? > " .. q(dir .. "/" .. runs .. "-" .. i .. ".done")
        .. ") > /dev/null 2>&1 &"
    end
    assert(select(2, shell.run(table.concat(cmds, " "))))
    return #members
  end
  -- Waits for the n members to end: what each answered (a campaign's: its results, its
  -- standard error and its exit status).
  local function collect(n)
    local t0 = core.now()
    local answers = {}
    for i = 1, n do
      local base = dir .. "/" .. runs .. "-" .. i
      while not read(base .. ".done") do
        assert(core.now() - t0 < 60, "member " .. i .. " did not end")
        core.sleep(0.05)
      end
      local text = read(base .. ".out") or ""
      local err = read(base .. ".out.err")
      if err then
        local results = {}
        for l in text:gmatch("[^\n]+") do
          local o = cjson.decode(l)
          results[#results + 1] = { ok = o.ok, kind = o.kind, message = o.message, attempts = o.attempts }
        end
        answers[i] = { results = results, log = { err }, status = tonumber(read(base .. ".done")) }
      else
        local ok, a = pcall(cjson.decode, text)
        assert(ok and type(a) == "table", "member " .. i .. " answered: " .. text)
        answers[i] = a
      end
    end
    return answers
  end
  local function run(members, during)
    local n = launch(members)
    if during then during() end
    return collect(n)
  end

  -- Every call of every member succeeded; the number of them.
  local function all_ok(answers)
    local n = 0
    for i, a in ipairs(answers) do
      assert.is_nil(a.config_error, a.config_error)
      assert.is_true(#a.results > 0, "member " .. i .. " made no call")
      for _, o in ipairs(a.results) do
        assert.is_true(o.ok, "member " .. i .. ": " .. tostring(o.kind) .. " " .. tostring(o.message))
        n = n + 1
      end
      if a.status then assert.equal(0, a.status, a.log[1]) end
    end
    return n
  end
  -- Nothing any member printed, logged or answered holds the store's password or the secret.
  local function no_secrets(answers)
    local text = cjson.encode(answers)   -- (a campaign's standard error is its log)
    for _, secret in ipairs{ "fleet-St0re-pw", sb.api_secret } do
      assert.is_nil(text:find(secret, 1, true), "a secret in what the fleet said")
    end
  end
  local function lines_of(answers, pattern)
    local total, most = 0, 0
    for _, a in ipairs(answers) do
      local n = 0
      for _, l in ipairs(a.log or {}) do
        for _ in l:gmatch(pattern) do n = n + 1 end
      end
      total, most = total + n, math.max(most, n)
    end
    return total, most
  end
  -- The fleet's pace, from the sandbox's arrival times: rate and the most in a second.
  local function pace(what)
    local times = sb:arrivals()
    local rate, most = arrivals.rate(times), arrivals.most_within(times, 1)
    return rate, most, times, ("%s: %d requests, %.1f a second, at most %d in a second")
      :format(what, #times, rate, most)
  end
  local function exact(what)
    local rate, most, times, said = pace(what)
    if os.getenv("ITNIO_SAY_PACE") then io.stderr:write(said, "\n") end
    assert.is_true(math.abs(rate - RATE) <= 0.05 * RATE, said)
    assert.is_true(most <= RATE + 1 + 1, said)
    return times
  end
  local function within_half_and_1_2(what)
    local rate, _, times, said = pace(what)
    if os.getenv("ITNIO_SAY_PACE") then
      local b = {}
      for _, t in ipairs(times) do
        local k = math.floor((t - times[1]) * 4) + 1
        b[k] = (b[k] or 0) + 1
      end
      for k = 1, #b do b[k] = b[k] or 0 end
      io.stderr:write(said, "\n  a quarter-second each: ", table.concat(b, " "), "\n")
    end
    assert.is_true(rate >= 0.5 * RATE and rate <= 1.2 * RATE, said)
    return times
  end
  -- No call waited past the store's timeout because of it: the longest call is at most the
  -- timeout, beside the wait for its slot (members sharing the rate), and the fleet's
  -- requests never stop for longer.
  local function none_held(answers, times, members)
    for i, a in ipairs(answers) do
      if a.longest then
        assert.is_true(a.longest <= TIMEOUT + 2 * members / RATE + 0.15,
                       ("member %d had a call of %.3f s"):format(i, a.longest))
      end
    end
    local gap = 0
    for i = 2, #times do gap = math.max(gap, times[i] - times[i - 1]) end
    assert.is_true(gap <= TIMEOUT + 2 * members / RATE + 0.1,
                   ("the fleet sent nothing for %.3f s"):format(gap))
  end

  it("holds the rate across three nginx of two workers each #timing", function()
    local m = {}
    for i = 1, 3 do
      m[#m + 1] = on_nginx(i, "update", { rate = RATE, seconds = 2 })
      m[#m + 1] = on_nginx(i, "update", { rate = RATE, seconds = 2 })
    end
    local answers = run(m)
    assert.is_true(all_ok(answers) >= 1.5 * RATE)
    exact("three nginx")
    no_secrets(answers)
  end)

  it("holds the rate across nginx, plain Lua processes and a campaign #timing", function()
    local answers = run{
      campaign(60, { rate = RATE }),
      on_nginx(1, "update", { rate = RATE, seconds = 2 }),
      on_nginx(2, "update", { rate = RATE, seconds = 2 }),
      in_process("update", { rate = RATE, seconds = 2 }),
      in_process("update", { rate = RATE, seconds = 2 }),
    }
    all_ok(answers)
    assert.equal(60, #answers[1].results)
    exact("nginx, processes and a campaign")
    no_secrets(answers)
  end)

  it("learns the vendor's clock once for the fleet: one -16", function()
    sb:stop()
    sb = sandbox.start{ skew = 3600 }
    local first = run{ on_nginx(1, "update", {}) }
    assert.equal(2, first[1].results[1].attempts)   -- the -16, then the resend
    local answers = run{ on_nginx(2, "update", {}), on_nginx(3, "update", {}), in_process("update", {}),
                         campaign(1, { rate = 10 }) }
    all_ok(answers)
    for i = 1, 4 do   -- each signed with the fleet's offset at once
      assert.equal(1, answers[i].results[1].attempts, "member " .. i .. " had to learn the clock again")
    end
    local st = sb:stats()
    assert.equal(st.accepted + 1, st.requests)
    sb:stop()
    sb = sandbox.start{}
  end)

  it("opens one breaker for the fleet, and lets one trial through for it all", function()
    local b = { failures = 3, cooldown = 1 }
    sb:fault{ kind = "status", status = 503, count = 3 }
    local opened = run{ on_nginx(1, "update", { failures = b.failures, cooldown = b.cooldown, n = 3 }) }
    for _, o in ipairs(opened[1].results) do assert.equal("HttpError", o.kind) end
    local held = run{ on_nginx(2, "update", { failures = 3, cooldown = 1 }),
                      on_nginx(3, "update", { failures = 3, cooldown = 1 }),
                      in_process("update", { failures = 3, cooldown = 1 }) }
    for _, a in ipairs(held) do assert.equal("CircuitOpenError", a.results[1].kind) end
    assert.equal(3, sb:stats().requests)
    core.sleep(1.1)   -- the cooldown: one trial, held long enough for the others to see it
    sb:fault{ kind = "delay", ms = 400, count = 1 }
    local trial = run{ on_nginx(1, "update", { failures = 3, cooldown = 1 }),
                       on_nginx(2, "update", { failures = 3, cooldown = 1 }),
                       on_nginx(3, "update", { failures = 3, cooldown = 1 }),
                       in_process("update", { failures = 3, cooldown = 1 }) }
    local ok, open = 0, 0
    for _, a in ipairs(trial) do
      local o = a.results[1]
      if o.ok then ok = ok + 1 elseif o.kind == "CircuitOpenError" then open = open + 1 end
    end
    assert.equal(1, ok)
    assert.equal(3, open)
    assert.equal(4, sb:stats().requests, cjson.encode(trial) .. cjson.encode(opened) .. cjson.encode(held))
    all_ok(run{ on_nginx(2, "update", { failures = 3, cooldown = 1 }),
                in_process("update", { failures = 3, cooldown = 1 }) })   -- closed, for all
  end)

  it("shares the batch's retry budget across machines", function()
    sb:fault{ kind = "status", status = 503, count = 1000 }
    local function batch() return { n = 6, retry_budget = 2, max_retries = 3 } end
    run{ on_nginx(1, "batch", batch()) }
    assert.equal(8, sb:stats().requests)   -- 6 tasks and 2 retries: the budget is spent
    local answers = run{ on_nginx(2, "batch", batch()), in_process("batch", batch()) }
    for _, a in ipairs(answers) do
      for _, k in ipairs(a.kinds) do assert.equal("HttpError", k) end
    end
    assert.equal(8 + 6 + 6, sb:stats().requests)   -- no retry anywhere else
  end)

  describe("when Redis is away or wrong", function()
    -- Two nginx (two requests each) and a process, from before the fault (0.5 s in) to 2.5 s
    -- past its end: their answers, and when the fault ended.
    local function fleet_run(fault, over)
      local o = { rate = RATE, seconds = 4 }
      for k, v in pairs(over or {}) do o[k] = v end
      local n = launch{ on_nginx(1, "update", o), on_nginx(1, "update", o), on_nginx(2, "update", o),
                        on_nginx(2, "update", o), in_process("update", o) }
      local t0 = core.now()
      core.sleep(0.5)
      fault()
      local ended, took = core.time(), core.now() - t0
      local answers = collect(n)
      assert.is_true(took < 4 - 2.5, "the fault took too long for the run: " .. took .. " s")
      return answers, ended
    end
    -- The fleet is back on one rate within a second and a half of the store's return: the
    -- second after that is exact (within 10%).
    local function back(times, ended)
      local n = 0
      for _, t in ipairs(times) do
        if t >= ended + 1.5 and t < ended + 2.5 then n = n + 1 end
      end
      assert.is_true(math.abs(n - RATE) <= 0.1 * RATE,
                     n .. " requests in the second 1.5 s after the store came back")
    end

    it("stopped (SIGSTOP, then SIGCONT): calls go on, none held, the fleet near its rate #timing", function()
      local answers, ended = fleet_run(function()
        r:pause()
        core.sleep(0.8)
        r:resume()
      end)
      all_ok(answers)
      local times = within_half_and_1_2("Redis stopped for 0.8 s")
      none_held(answers, times, 5)
      back(times, ended)
      local away, most = lines_of(answers, "is away")
      assert.is_true(away >= 1 and most == 1, away .. " said it is away, " .. most .. " at most")
      local _, again = lines_of(answers, "answers again")
      assert.is_true(again <= 1)
      no_secrets(answers)
    end)

    it("killed, then started again: calls go on, none held, the fleet near its rate #timing", function()
      local answers, ended = fleet_run(function()
        r:kill()
        core.sleep(0.8)
        r:restart()
      end)
      all_ok(answers)
      local times = within_half_and_1_2("Redis killed for 0.8 s")
      none_held(answers, times, 5)
      back(times, ended)
      no_secrets(answers)
    end)

    it("its scripts flushed mid-run: the fleet does not notice #timing", function()
      local answers = fleet_run(function()
        r:cli("SCRIPT", "FLUSH")
        core.sleep(0.5)
        r:cli("SCRIPT", "FLUSH")
      end)
      all_ok(answers)
      exact("scripts flushed")
      assert.equal(0, (lines_of(answers, "is away")))
    end)

    it("refusing the password for a moment: said once, without it; calls go on #timing", function()
      local answers = fleet_run(function()
        r:set_password("an0ther-Pw", true)   -- (its clients dropped: they log in again)
        core.sleep(0.8)
        r:set_password("fleet-St0re-pw")
      end)
      all_ok(answers)
      local times = within_half_and_1_2("the password refused for 0.8 s")
      none_held(answers, times, 5)
      local refused, most_refused = lines_of(answers, "refused the credentials")
      assert.is_true(refused >= 1 and most_refused == 1, refused .. " said the password was refused")
      local _, most = lines_of(answers, "is away")
      assert.equal(1, most)
      no_secrets(answers)
      assert.is_nil(cjson.encode(answers):find("an0ther-Pw", 1, true))
    end)

    it("one machine's connect failures feed its breaker alone; the fleet's stays closed #timing", function()
      local dead = "http://127.0.0.1:" .. shell.free_ports()
      local b = { failures = 3, cooldown = 1, rate = RATE, seconds = 2 }
      local bad = {}
      for k, v in pairs(b) do bad[k] = v end
      bad.base = dead
      local answers = run{ on_nginx(1, "update", b), on_nginx(1, "update", b), on_nginx(2, "update", b),
                           on_nginx(3, "update", bad), on_nginx(3, "update", bad) }
      all_ok{ answers[1], answers[2], answers[3] }   -- the vendor is healthy: not one refused
      for i = 4, 5 do
        for _, o in ipairs(answers[i].results) do
          assert.truthy(o.kind == "TransportError" or o.kind == "CircuitOpenError", o.kind)
        end
      end
      within_half_and_1_2("one machine that cannot reach the vendor")
    end)
  end)
end)
