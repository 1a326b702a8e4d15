-- The store (itnio.new{ store = "redis://..." }), in one process against a redis-server of
-- the spec's own and the sandbox: the option and its refusals, what lives in Redis (hashed,
-- expiring, holding neither the key, the secret nor the password), the state every client of
-- the account shares (the rate, the breaker and its one trial, the budget, one -16), on the
-- blocking path and on jobs, and what happens when the store is away (stopped, killed,
-- refusing the password, its scripts flushed): nothing fails or waits past the store's
-- timeout because of it.
local itnio   = require "itnio"
local core    = require "itnio.core"
local errors  = require "itnio.errors"
local sandbox = require "support.sandbox"
local support = require "support.redis"

local function task(over) return sandbox.task("From the store spec", over) end

describe("the store option", function()
  local function refused(store, pattern)
    local c, err = itnio.new{ api_key = "k", api_secret = "s", store = store }
    assert.is_nil(c)
    assert.is_true(errors.is(err, errors.ConfigError), tostring(err))
    assert.truthy(err.message:find("store", 1, true), err.message)
    if pattern then assert.truthy(err.message:find(pattern), err.message) end
    assert.is_nil(err.message:find("s3cr3t-Pw", 1, true), err.message)
  end

  it("refuses what is not a redis URL, naming store, never the password", function()
    refused("http://h:6379", "redis://")
    refused("h:6379")
    refused("redis://", "no host")
    refused("redis://:s3cr3t-Pw@", "no host")
    refused("redis://h:0", "port")
    refused("redis://h:99999", "port")
    refused("redis://h:x", "port")
    refused("redis://h/zero", "database")
    refused("redis://h/1/2", "database")
    refused("redis://h 1")
    refused(42, "got number")
    refused({ url = "redis://h", timeot = 1 }, "did you mean 'timeout'")
    refused({ url = "redis://h", timeout = 0 }, "timeout")
    refused({ url = "redis://h", prefix = "a b" }, "prefix")
    refused({}, "store.url")
  end)

  it("refuses rediss:// saying TLS is not available with this build, and what to do", function()
    refused("rediss://:s3cr3t-Pw@h:6380", "TLS")
    refused("rediss://h", "tunnel")
  end)

  it("takes a URL or a table, and sends nothing at itnio.new", function()
    local free = require("support.shell").free_ports()
    for _, spec in ipairs{ "redis://127.0.0.1:" .. free, "redis://u:p%40ss@127.0.0.1:" .. free .. "/3",
                           { url = "redis://[::1]:" .. free, timeout = 0.2, connect_timeout = 0.1,
                             prefix = "x" } } do
      assert(itnio.new{ api_key = "k", api_secret = "s", store = spec })
    end
  end)
end)

describe("the store", function()
  local r, sb
  setup(function()
    r = support.start{}
    sb = sandbox.start{}
  end)
  teardown(function()
    if sb then sb:stop() end
    if r then r:stop() end
  end)
  before_each(function()
    sb:reset()
    r:cli("FLUSHALL")
  end)

  local function client(over)
    local o = { store = { url = r.url, timeout = 0.1, connect_timeout = 0.1 } }
    for k, v in pairs(over or {}) do o[k] = v end
    return sb:client(o)
  end

  it("keeps its keys under a hash of the account, each expiring, none holding a secret", function()
    local c = client{ rate = 50, breaker = { failures = 3, cooldown = 1 } }
    assert(c:recall_update(task()))
    local results = c:batch_recall_update({ task(), task() })
    assert(results[2].res)
    sb:fault{ kind = "code", code = -16, count = 1 }   -- (and the offset)
    assert(c:recall_update(task()))
    local keys = r:keys()
    local n = 0
    for k, ttl in pairs(keys) do
      n = n + 1
      assert.truthy(k:find("^itnio:{%x+}:"), k)
      assert.is_true(ttl > 0, k .. " does not expire (" .. tostring(ttl) .. ")")
      for _, secret in ipairs{ sb.api_key, sb.api_secret, r.password } do
        assert.is_nil(k:find(secret, 1, true), k)
        assert.is_nil(r:cli("DUMP", k):find(secret, 1, true), k)
      end
    end
    assert.is_true(n >= 4, n)
  end)

  it("puts neither the store's password nor the secret in a log, an error, an event or a result", function()
    local seen = {}
    local function keep(...) seen[#seen + 1] = { ... } end
    local c = client{ rate = 100, breaker = { failures = 2, cooldown = 0.2 }, max_retries = 1,
                      backoff_base = 0.001, logger = keep, on_call = keep }
    keep(c:recall_update(task()))
    sb:fault{ kind = "status", status = 503, count = 3 }
    keep(c:recall_update(task()))
    keep(c:batch_recall_update({ task(), task() }))
    local job = assert(c:start_recall_update(task()))
    while c:poll(0.1) > 0 do end
    keep(job:result())
    r:pause()   -- and what it says when the store is away
    keep(c:recall_update(task()))
    r:resume()
    core.sleep(1.1)   -- (back, for the specs after this one: the process remembers it was away)
    keep(c:recall_update(task()))
    local text = require("support.fixtures").dump(seen)
    assert.truthy(text:find("answers again", 1, true), text)
    assert.truthy(text:find("is away", 1, true), text)
    for _, secret in ipairs{ r.password, sb.api_secret } do
      assert.is_nil(text:find(secret, 1, true), "found in: " .. text)
    end
  end)

  it("makes one round trip an attempt, and a second only when there is something to tell", function()
    local function trips()
      local n = 0
      for calls in r:cli("INFO", "commandstats"):gmatch("cmdstat_eval%a*:calls=(%d+)") do
        n = n + tonumber(calls)
      end
      return n
    end
    local c = client{ breaker = { failures = 3, cooldown = 1 }, max_retries = 0 }
    local function costs(f)
      local t0 = trips()
      f()
      return trips() - t0
    end
    for _, text in pairs(require("itnio.internal.store").SCRIPTS) do r:cli("SCRIPT", "LOAD", text) end
    assert.equal(5, costs(function() for _ = 1, 5 do assert(c:recall_update(task())) end end))
    sb:fault{ kind = "status", status = 503, count = 1 }
    assert.equal(2, costs(function() assert.is_nil(c:recall_update(task())) end))   -- counted
    assert.equal(2, costs(function() assert(c:recall_update(task())) end))          -- and reset
    assert.equal(1, costs(function() assert(c:recall_update(task())) end))
    -- the batch's budget: earned while it is not known to be full, then no more (one at a time;
    -- the process may know it full already, from a batch of an earlier spec)
    local results
    local n = costs(function()
      results = c:batch_recall_update({ task(), task(), task(), task() }, { concurrency = 1 })
    end)
    assert.is_true(n == 4 or n == 5, n .. " round trips for 4 tasks")
    assert(results[4].res)
  end)

  it("paces two clients of the account at one rate, on the blocking path #timing", function()
    local a, b = client{ rate = 20 }, client{ rate = 20 }
    local t0 = core.now()
    for _ = 1, 10 do
      assert(a:recall_update(task()))
      assert(b:recall_update(task()))
    end
    local took = core.now() - t0
    assert.is_true(took >= 19 / 20 * 0.9, "20 updates at 20 a second took " .. took)
  end)

  it("paces jobs through the store, poll(0) staying short #timing", function()
    local a, b = client{ rate = 20 }, client{ rate = 20 }
    local jobs = {}
    for i = 1, 10 do
      jobs[#jobs + 1] = assert(a:start_recall_update(task()))
      jobs[#jobs + 1] = assert(b:start_recall_update(task()))
      if i == 1 then assert(jobs[1]) end
    end
    local t0, longest = core.now(), 0
    while true do
      local p0 = core.now()
      local left = a:poll(0) + b:poll(0)
      longest = math.max(longest, core.now() - p0)
      if left == 0 then break end
      core.sleep(0.005)
    end
    local took = core.now() - t0
    for _, j in ipairs(jobs) do assert(j:result()) end
    assert.is_true(took >= 19 / 20 * 0.9, "20 jobs at 20 a second took " .. took)
    assert.is_true(longest < 0.05, "a poll(0) took " .. longest .. " s")
    assert.equal(20, sb:stats().accepted)
  end)

  it("opens one breaker for every client, and lets one trial through for them all", function()
    local opts = { breaker = { failures = 2, cooldown = 0.5 }, max_retries = 0 }
    local a, b = client(opts), client(opts)
    sb:fault{ kind = "status", status = 503, count = 2 }
    assert.is_nil(a:recall_update(task()))
    assert.is_nil(b:recall_update(task()))
    local _, err = a:recall_update(task())
    assert.equal("CircuitOpenError", err.kind)
    _, err = b:recall_update(task())   -- the other client: its breaker is the same
    assert.equal("CircuitOpenError", err.kind)
    assert.equal(2, sb:stats().requests)
    core.sleep(0.6)
    sb:fault{ kind = "delay", ms = 300, count = 1 }   -- the trial, held: the other waits
    local trial = assert(a:start_recall_update(task()))
    a:poll(0.1)
    _, err = b:recall_update(task())
    assert.equal("CircuitOpenError", err.kind)
    while a:poll(0.1) > 0 do end
    assert(trial:result())
    assert(b:recall_update(task()))   -- closed again, for both
    assert.equal(4, sb:stats().requests)
  end)

  it("lets a machine's own connect failures feed its own breaker alone", function()
    local opts = { breaker = { failures = 2, cooldown = 5 }, max_retries = 0 }
    local free = require("support.shell").free_ports()
    local bad = client{ breaker = opts.breaker, max_retries = 0, base_url = "http://127.0.0.1:" .. free }
    local good = client(opts)
    for _ = 1, 3 do assert.is_nil(bad:recall_update(task())) end
    local _, err = bad:recall_update(task())
    assert.equal("CircuitOpenError", err.kind)
    assert(good:recall_update(task()))   -- the fleet's breaker heard nothing of it
  end)

  it("shares the batch's retry budget", function()
    local a, b = client{ max_retries = 3, backoff_base = 0.001, backoff_cap = 0.002 },
                 client{ max_retries = 3, backoff_base = 0.001, backoff_cap = 0.002 }
    sb:fault{ kind = "status", status = 503, count = 100 }
    local ra = a:batch_recall_update({ task() }, { retry_budget = 2 })
    local rb = b:batch_recall_update({ task() }, { retry_budget = 2 })
    assert.truthy(ra[1].err.message:find("retry budget is spent", 1, true), ra[1].err.message)
    assert.truthy(rb[1].err.message:find("retry budget is spent", 1, true), rb[1].err.message)
    assert.equal(4, sb:stats().requests)   -- 2 first attempts, 2 retries for the two batches
  end)

  it("learns the vendor's clock once for every client (one -16)", function()
    sb:stop()
    sb = sandbox.start{ skew = 3600 }
    local a, b = client(), client()
    local res = assert(a:recall_update(task()))
    assert.equal(2, res.attempts)
    res = assert(b:recall_update(task()))
    assert.equal(1, res.attempts)   -- the other client signed with the fleet's offset at once
    assert.equal(3, sb:stats().requests)
    sb:stop()
    sb = sandbox.start{}
  end)

  describe("when Redis is away", function()
    local function lines_of(log, pattern)
      local n = 0
      for _, l in ipairs(log) do if l:find(pattern) then n = n + 1 end end
      return n
    end

    it("stopped: calls go on, none waits past the store's timeout, the logger hears it once each way #timing",
       function()
      local log = {}
      local c = client{ rate = 1000, logger = function(_, msg) log[#log + 1] = msg end }
      assert(c:recall_update(task()))
      r:pause()
      local longest = 0
      for _ = 1, 10 do
        local t0 = core.now()
        assert(c:recall_update(task()))
        longest = math.max(longest, core.now() - t0)
      end
      local fresh = client{ rate = 1000, logger = function() end }   -- (a client made per request)
      local t0 = core.now()
      assert(fresh:recall_update(task()))
      local first = core.now() - t0
      r:resume()
      assert.is_true(longest < 0.1 + 0.1 + 0.05, "a call took " .. longest .. " s")   -- timeout + the call
      assert.is_true(first < 0.08, "a new client paid the timeout again: " .. first .. " s")
      core.sleep(1.1)   -- past the store's interval: one command probes, and it answers
      for _ = 1, 3 do assert(c:recall_update(task())) end
      assert.equal(1, lines_of(log, "is away"))
      assert.equal(1, lines_of(log, "answers again"))
    end)

    it("killed: jobs go on, and poll(0) never waits on it #timing", function()
      local log = {}
      local c = client{ rate = 200, logger = function(_, msg) log[#log + 1] = msg end }
      r:kill()
      local jobs = {}
      for i = 1, 10 do jobs[i] = assert(c:start_recall_update(task())) end
      local longest = 0
      while true do
        local t0 = core.now()
        local left = c:poll(0)
        longest = math.max(longest, core.now() - t0)
        if left == 0 then break end
        core.sleep(0.002)
      end
      for i = 1, 10 do assert(jobs[i]:result()) end
      assert.is_true(longest < 0.05, "a poll(0) took " .. longest .. " s")
      assert.equal(1, lines_of(log, "is away"))
      r:restart()
      core.sleep(1.1)   -- past the store's interval: the next call finds it back
      assert(c:recall_update(task()))
      assert.equal(1, lines_of(log, "answers again"))
    end)

    it("restarted between two calls: a new connection, and nothing is said", function()
      local log = {}
      local c = client{ rate = 200, logger = function(_, msg) log[#log + 1] = msg end }
      assert(c:recall_update(task()))
      local job = assert(c:start_recall_update(task()))
      while c:poll(0.1) > 0 do end
      assert(job:result())
      r:kill()
      r:restart()
      assert(c:recall_update(task()))
      job = assert(c:start_recall_update(task()))
      while c:poll(0.1) > 0 do end
      assert(job:result())
      assert.equal(0, lines_of(log, "the store"), table.concat(log, "\n"))
      assert.is_true(next(r:keys()) ~= nil)   -- (the state is in the new one)
    end)

    it("refusing the password: said once, clearly, without the password; calls go on", function()
      local log = {}
      local c = sb:client{ store = "redis://:Wr0ng-pw-Xq@127.0.0.1:" .. r.port,
                           logger = function(_, msg) log[#log + 1] = msg end }
      for _ = 1, 3 do assert(c:recall_update(task())) end
      assert.equal(1, lines_of(log, "refused the credentials"))
      for _, l in ipairs(log) do assert.is_nil(l:find("Wr0ng-pw-Xq", 1, true), l) end
    end)

    it("its scripts flushed mid-run: the next command loads them again", function()
      local c = client{ rate = 100 }
      assert(c:recall_update(task()))
      r:cli("SCRIPT", "FLUSH")
      assert(c:recall_update(task()))
      assert.equal("1", r:cli("SCRIPT", "EXISTS", require("itnio.internal.store").SHA.before):match("%d"))
      local job = assert(c:start_recall_update(task()))
      r:cli("SCRIPT", "FLUSH")
      while c:poll(0.1) > 0 do end
      assert(job:result())
    end)
  end)
end)
