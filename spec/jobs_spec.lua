-- Jobs and the batch outside nginx: client:start_recall_update, client:poll, job:done,
-- job:result, job:cancel, on_done, client:batch_recall_update, against the sandbox over real
-- sockets. Tests tagged #timing assert generous bounds on elapsed time (valgrind leaves them out).
local errors  = require "itnio.errors"
local core    = require "itnio.core"
local sandbox = require "support.sandbox"
local hostile = require "support.hostile"
local shell   = require "support.shell"

local function task(over) return sandbox.task("Hello from a job", over) end
local function client(sb, over) return sb:client(over) end

-- Polls until every job of c has ended (bounded: a hung job fails the spec, not the suite).
local function drain(c, limit)
  local t0 = core.now()
  while c:poll(0.05) > 0 do
    if core.now() - t0 > (limit or 20) then error("jobs still running after " .. (limit or 20) .. " s") end
  end
end

-- What a caller can compare of two outcomes of the same call.
local function shape(res, err)
  if res then return { ok = true, code = res.code, attempts = res.attempts, message = res.message } end
  return { ok = false, kind = err.kind, code = err.code, attempts = err.attempts, reason = err.reason,
           retryable = err.retryable, http_status = err.http_status, sent = err.sent,
           message = (err.message:gsub("%d+ ms", "N ms")) }   -- libcurl says how long it took
end

describe("jobs", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("start returns a job at once and sends nothing until poll", function()
    local c = client(sb)
    local job = assert(c:start_recall_update(task()))
    assert.is_false(job:done())
    assert.equal(0, sb:stats().requests)
    assert.equal(0, sb:stats().connections)
    drain(c)
    assert.is_true(job:done())
    local res, err = job:result()
    assert.is_nil(err)
    assert.equal(0, res.code)
    assert.equal(1, res.attempts)
    assert.equal("Hello from a job", sb:task(299).task.nodeList[1].text)
  end)

  it("returns nil, ValidationError at once for a task that breaks a rule, and sends nothing", function()
    local c = client(sb)
    local job, err = c:start_recall_update(task{ recallType = 7 })
    assert.is_nil(job)
    assert.is_true(errors.is(err, errors.ValidationError))
    local _, list = core.encode("recall_update", task{ recallType = 7 })
    assert.same(list, err.errors)
    assert.equal(0, c:poll())
    assert.equal(0, sb:stats().requests)
  end)

  it("raises for programming errors: a task that is not a table, a bad on_done, a bad timeout", function()
    local c = client(sb)
    assert.has_error(function() c:start_recall_update("task") end)
    assert.has_error(function() c:start_recall_update(task(), { on_done = "print" }) end)
    for _, bad in ipairs{ -1, "1", 0 / 0, true, {}, 1e9 } do
      assert.has_error(function() c:poll(bad) end)
    end
    assert.equal(0, c:poll())
    assert.equal(0, c:poll(0))
    assert.equal(0, c:poll(0.01))
  end)

  it("raises when result is asked before the job is done", function()
    local c = client(sb)
    local job = assert(c:start_recall_update(task()))
    assert.has_error(function() job:result() end, nil)
    drain(c)
    assert.truthy(job:result())
  end)

  it("calls on_done once, from poll, with what result gives", function()
    local c = client(sb)
    local calls, inside = {}, false
    local job = assert(c:start_recall_update(task(), { on_done = function(res, err)
      calls[#calls + 1] = { res, err, inside }
    end }))
    inside = true
    drain(c)
    inside = false
    assert.equal(1, #calls)
    assert.is_true(calls[1][3])   -- while poll ran
    assert.equal(job:result(), calls[1][1])
    c:poll(0)
    assert.equal(1, #calls)
  end)

  it("lets on_done poll and start jobs: every callback runs once, none is lost", function()
    local c = client(sb)
    local done, order = {}, {}
    local function cb(name, more)
      return function(res, err)
        assert(res, tostring(err))
        order[#order + 1] = name
        done[name] = (done[name] or 0) + 1
        c:poll(0.05)   -- a callback that polls: the jobs it ends are delivered too, once
        if more then assert(c:start_recall_update(task(), { on_done = cb(more) })) end
      end
    end
    for i = 1, 4 do assert(c:start_recall_update(task(), { on_done = cb("a" .. i, "b" .. i) })) end
    drain(c)
    assert.equal(8, #order, table.concat(order, " "))
    for i = 1, 4 do
      assert.equal(1, done["a" .. i])
      assert.equal(1, done["b" .. i])
    end
  end)

  it("logs an on_done that raises, and the other jobs still end", function()
    local lines = {}
    local c = client(sb, { logger = function(level, msg) lines[#lines + 1] = level .. " " .. msg end })
    local bad = assert(c:start_recall_update(task(), { on_done = function() error("boom in callback") end }))
    local good = assert(c:start_recall_update(task()))
    drain(c)
    assert.truthy(bad:result())
    assert.truthy(good:result())
    local found = false
    for _, l in ipairs(lines) do if l:find("boom in callback", 1, true) then found = true end end
    assert.is_true(found, table.concat(lines, "\n"))
  end)

  it("says an on_done error once on stderr when the client has no logger", function()
    -- (the child loads the core the runner loaded: make test-poll runs this with the poll(2) one)
    local script = table.concat({
      "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path",
      "package.cpath = '" .. hostile.core_cpath() .. ";' .. package.cpath",
      "local c = assert(require('itnio').new{ api_key = 'k', api_secret = 's', base_url = '"
        .. sb.http_url .. "' })",
      "local task = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }",
      "for i = 1, 3 do"
        .. " assert(c:start_recall_update(task, { on_done = function() error('cb' .. i) end })) end",
      "while c:poll(0.05) > 0 do end",
      "print('polled to the end')",
    }, "\n")
    local out, ok = sandbox.run("cd " .. sandbox.shell_quote(sandbox.root) .. " && "
      .. sandbox.shell_quote(shell.lua) .. " -e " .. sandbox.shell_quote(script))
    assert.is_true(ok, out)
    assert.truthy(out:find("polled to the end", 1, true), out)
    local _, n = out:gsub("on_done callback raised", "")
    assert.equal(1, n, out)
  end)

  -- The same scenario through recall_update and through a job gives the same outcome.
  local scenarios = {
    { "success", nil, {} },
    { "AuthError", nil, { api_secret = "wrong" } },
    { "ParameterError", nil, {}, { keyId = 300 } },
    { "SystemError retried", { count = 6, kind = "code", code = -18 }, { max_retries = 2 } },
    { "HttpError 500 retried", { count = 6, kind = "status", status = 500 }, { max_retries = 1 } },
    { "503 then success", { count = 1, kind = "status", status = 503 }, { max_retries = 2 } },
    { "DecodeError", { count = 2, kind = "answer", status = 200, body = "<html/>" }, {} },
    { "ApiError", { count = 2, kind = "answer", status = 200,
                    body = '{"code":-99,"msg":"quota gone"}' }, {} },
    { "reset, not retried", { count = 2, kind = "reset" }, { max_retries = 0 } },
    { "connect refused", nil, { base_url = "http://127.0.0.1:9", max_retries = 1 } },
  }
  for _, sc in ipairs(scenarios) do
    it("gives what recall_update gives: " .. sc[1], function()
      local outcomes = {}
      for pass = 1, 2 do
        sb:reset()
        if sc[2] then sb:fault(sc[2]) end
        local c = client(sb, sc[3])
        if pass == 1 then
          outcomes[1] = shape(c:recall_update(task(sc[4])))
        else
          local job = assert(c:start_recall_update(task(sc[4])))
          drain(c)
          outcomes[2] = shape(job:result())
        end
        outcomes[pass].requests = sb:stats().requests
      end
      assert.same(outcomes[1], outcomes[2])
    end)
  end

  it("fixes the clock skew through a job as the blocking call does", function()
    local skewed = sandbox.start{ skew = 3600 }
    local ok, e = pcall(function()
      local c = client(skewed, { max_retries = 0 })
      local job = assert(c:start_recall_update(task()))
      drain(c)
      local res = assert(job:result())
      assert.equal(2, res.attempts)
      assert.is_true(math.abs(c.state:offset() - 3600) <= 2)
    end)
    skewed:stop()
    assert(ok, e)
  end)

  it("waits out Retry-After on a timer: poll(0) returns at once meanwhile #timing", function()
    sb:fault{ count = 1, kind = "status", status = 503, retry_after = 1 }
    local c = client(sb)
    local t0 = core.now()
    local job = assert(c:start_recall_update(task()))
    local worst, polls = 0, 0
    while not job:done() do
      local p0 = core.now()
      c:poll(0)
      worst = math.max(worst, core.now() - p0)
      polls = polls + 1
      core.sleep(0.01)
      assert(core.now() - t0 < 10, "the job never ended")
    end
    local res = assert(job:result())
    assert.equal(2, res.attempts)
    assert.is_true(core.now() - t0 >= 0.95, "the retry came before Retry-After")
    assert.is_true(worst < 0.05, "a poll(0) took " .. worst .. " s")
    assert.is_true(polls > 20)
  end)

  it("poll(timeout) waits for an answer and no longer than the timeout #timing", function()
    sb:fault{ count = 1, kind = "delay", ms = 1500 }
    local c = client(sb)
    local job = assert(c:start_recall_update(task()))
    local t0 = core.now()
    assert.equal(1, c:poll(0.3))
    local took = core.now() - t0
    assert.is_true(took >= 0.29 and took < 0.6, "poll(0.3) took " .. took)
    drain(c)
    assert.truthy(job:result())
  end)

  describe("cancel", function()
    it("ends a job in flight with TransportError cancelled, sent", function()
      sb:fault{ count = 1, kind = "delay", ms = 2000 }
      local c = client(sb)
      local seen
      local job = assert(c:start_recall_update(task(), { on_done = function(_, err) seen = err end }))
      local t0 = core.now()
      while sb:stats().requests == 0 and core.now() - t0 < 5 do c:poll(0.02) end
      assert.is_true(job:cancel())
      assert.is_true(job:done())
      local res, err = job:result()
      assert.is_nil(res)
      assert.is_true(errors.is(err, errors.TransportError))
      assert.equal("cancelled", err.reason)
      assert.is_true(err.sent)
      assert.equal(1, err.attempts)
      assert.is_false(job:cancel())
      assert.equal(0, c:poll(0))
      assert.equal(err, seen)
    end)

    it("ends a job that has not left with sent = false", function()
      local c = client(sb)
      local job = assert(c:start_recall_update(task()))
      assert.is_true(job:cancel())
      local _, err = job:result()
      assert.equal("cancelled", err.reason)
      assert.is_false(err.sent)
      assert.equal(0, c:poll(0))
      assert.equal(0, sb:stats().requests)
    end)

    it("ends a job waiting for its retry timer", function()
      sb:fault{ count = 1, kind = "status", status = 503, retry_after = 30 }
      local c = client(sb, { max_retry_after = 60 })
      local job = assert(c:start_recall_update(task()))
      local t0 = core.now()
      while sb:stats().requests == 0 and core.now() - t0 < 5 do c:poll(0.02) end
      c:poll(0.1)
      assert.is_false(job:done())
      job:cancel()
      local _, err = job:result()
      assert.equal("cancelled", err.reason)
      assert.is_true(err.sent)
      assert.equal(0, c:poll(0))
    end)
  end)

  describe("closing the client", function()
    it("ends the jobs in flight without calling back, and refuses new ones", function()
      sb:fault{ count = 3, kind = "delay", ms = 2000 }
      local c = client(sb)
      local called = 0
      local js = {}
      for i = 1, 3 do
        js[i] = assert(c:start_recall_update(task(), { on_done = function() called = called + 1 end }))
      end
      c:poll(0.1)
      c:close()
      for i = 1, 3 do
        assert.is_true(js[i]:done())
        local _, err = js[i]:result()
        assert.equal("closed", err.reason)
      end
      assert.equal(0, c:poll(0))
      assert.equal(0, called)
      local job, err = c:start_recall_update(task())
      assert.is_nil(job)
      assert.equal("closed", err.reason)
      local res, err2 = c:recall_update(task())
      assert.is_nil(res)
      assert.equal("closed", err2.reason)
    end)

    it("lets the garbage collector take a client with jobs in flight", function()
      sb:fault{ count = 4, kind = "delay", ms = 2000 }
      local weak = setmetatable({}, { __mode = "v" })
      do
        local c = client(sb)
        for _ = 1, 4 do assert(c:start_recall_update(task())) end
        c:poll(0.1)
        weak[1] = c
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)
  end)

  it("runs many jobs at once: 20 answers held 200 ms each overlap #timing", function()
    local slow = sandbox.start{ hold_ms = 200 }
    local ok, e = pcall(function()
      local c = client(slow)
      local t0 = core.now()
      local js = {}
      for i = 1, 20 do js[i] = assert(c:start_recall_update(task())) end
      drain(c)
      local took = core.now() - t0
      for i = 1, 20 do assert.truthy(js[i]:result()) end
      assert.is_true(took < 1.5, "20 held answers took " .. took .. " s")
      assert.equal(20, slow:stats().accepted)
    end)
    slow:stop()
    assert(ok, e)
  end)
end)

describe("client:batch_recall_update", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("returns one entry per task in order; a broken task is an entry, the others go", function()
    local c = client(sb)
    local tasks = {}
    for i = 1, 12 do tasks[i] = task() end
    tasks[5] = task{ recallType = 7 }
    local seen = {}
    local results = c:batch_recall_update(tasks, { concurrency = 4, on_done = function(res, err, i)
      seen[#seen + 1] = i
      assert(res or err)
    end })
    assert.equal(12, #results)
    for i = 1, 12 do
      if i == 5 then
        assert.is_true(errors.is(results[i].err, errors.ValidationError))
      else
        assert.is_nil(results[i].err)
        assert.equal(0, results[i].res.code)
      end
    end
    assert.equal(12, #seen)
    assert.equal(11, sb:stats().accepted)
    assert.is_true(sb:stats().connections <= 4, "more connections than the concurrency")
  end)

  it("rides kept-alive connections across the batch", function()
    local c = client(sb)
    local tasks = {}
    for i = 1, 40 do tasks[i] = task() end
    local results = c:batch_recall_update(tasks, { concurrency = 2 })
    for i = 1, 40 do assert.truthy(results[i].res) end
    assert.is_true(sb:stats().connections <= 2)
  end)

  it("keeps its connections between waves of a wide batch (none closed and opened again) #big", function()
    local c = client(sb)
    local tasks = {}
    for i = 1, 1500 do tasks[i] = task() end
    local results = c:batch_recall_update(tasks, { concurrency = 48 })
    for i = 1, 1500 do assert.truthy(results[i].res) end
    local n = sb:stats().connections
    assert.is_true(n <= 48, "connections opened: " .. n)
  end)

  it("multiplexes the batch on one HTTP/2 connection when the server offers it over TLS", function()
    local h2 = sandbox.start{ http2 = true, hold_ms = 100 }
    local ok, e = pcall(function()
      local c = client(h2, { base_url = h2.https_url, cafile = h2.cafile })
      local tasks = {}
      for i = 1, 24 do tasks[i] = task() end
      local results = c:batch_recall_update(tasks, { concurrency = 8 })
      for i = 1, 24 do assert.truthy(results[i].res, tostring(results[i].err)) end
      assert.equal(24, h2:stats().accepted)
      assert.equal(1, h2:stats().connections)
      c:close()   -- else nginx's graceful stop waits on the idle HTTP/2 connection
    end)
    h2:stop()
    assert(ok, e)
  end)

  it("stops retrying when the batch's retry budget is spent (an outage)", function()
    sb:fault{ count = 1000, kind = "status", status = 503 }
    local c = client(sb, { max_retries = 3 })
    local tasks = {}
    for i = 1, 30 do tasks[i] = task() end
    local results = c:batch_recall_update(tasks, { concurrency = 8, retry_budget = 5 })
    local spent = 0
    for i = 1, 30 do
      assert.is_true(errors.is(results[i].err, errors.HttpError))
      if results[i].err.message:find("retry budget", 1, true) then spent = spent + 1 end
    end
    assert.equal(30 + 5, sb:stats().requests)
    assert.is_true(spent > 0)
  end)

  it("survives a server that resets half of the batch's connections", function()
    sb:fault{ count = 10, kind = "reset" }
    local c = client(sb, { max_retries = 0 })
    local tasks = {}
    for i = 1, 20 do tasks[i] = task() end
    local results = c:batch_recall_update(tasks, { concurrency = 4 })
    local ok, reset = 0, 0
    for i = 1, 20 do
      if results[i].res then ok = ok + 1
      else
        assert.equal("reset", results[i].err.reason, tostring(results[i].err))
        reset = reset + 1
      end
    end
    assert.equal(20, ok + reset)
    assert.is_true(ok >= 5 and reset >= 1, ok .. " ok, " .. reset .. " reset")
  end)

  it("does not let one broken on_done stop the batch", function()
    local c = client(sb, { logger = function() end })
    local results = c:batch_recall_update({ task(), task(), task() }, { on_done = function(_, _, i)
      if i == 2 then error("callback broke") end
    end })
    for i = 1, 3 do assert.truthy(results[i].res) end
  end)

  it("bounds the whole batch with deadline #timing", function()
    local slow = sandbox.start{ hold_ms = 300 }
    local ok, e = pcall(function()
      local c = client(slow)
      local tasks = {}
      for i = 1, 10 do tasks[i] = task() end
      local t0 = core.now()
      local results = c:batch_recall_update(tasks, { concurrency = 2, deadline = 0.5 })
      local took = core.now() - t0
      assert.is_true(took < 1.2, "the batch took " .. took)
      local done, late = 0, 0
      for i = 1, 10 do
        if results[i].res then done = done + 1
        else
          assert.equal("TransportError", results[i].err.kind)
          late = late + 1
        end
      end
      assert.is_true(done >= 2 and late >= 4, done .. " done, " .. late .. " late")
    end)
    slow:stop()
    assert(ok, e)
  end)

  it("answers an empty list with an empty list, and raises for arguments of the wrong type", function()
    local c = client(sb)
    assert.same({}, c:batch_recall_update({}))
    assert.has_error(function() c:batch_recall_update("tasks") end)
    assert.has_error(function() c:batch_recall_update({}, { concurrency = 0 }) end)
    assert.has_error(function() c:batch_recall_update({}, { concurrency = 1.5 }) end)
    assert.has_error(function() c:batch_recall_update({}, { deadline = -1 }) end)
    assert.has_error(function() c:batch_recall_update({}, { on_done = 1 }) end)
    assert.has_error(function() c:batch_recall_update({}, "fast") end)
  end)

  it("gives every task a closed error on a closed client", function()
    local c = client(sb)
    c:close()
    local results = c:batch_recall_update({ task(), task() })
    assert.equal("closed", results[1].err.reason)
    assert.equal("closed", results[2].err.reason)
    assert.equal(0, sb:stats().requests)
  end)
end)

describe("a host's event loop: client:pollfd(), events(), timeout()", function()
  local socket = require "socket"
  local sb, held
  setup(function()
    sb = sandbox.start{}
    held = sandbox.start{ hold_ms = 300 }
  end)
  teardown(function()
    if sb then sb:stop() end
    if held then held:stop() end
  end)
  before_each(function() sb:reset(); held:reset() end)

  local EPOLL = core.EVENTS == "epoll"
  -- Waits at most s for the client's descriptor to be readable: whether it was.
  local function readable(c, s)
    local fd = assert(c:pollfd())
    local r = socket.select({ { getfd = function() return fd end } }, nil, s)
    return #r > 0
  end
  -- A host's loop: sleeps on the descriptor (or, on poll(2), for the timeout) between polls.
  local function host_loop(c, limit)
    local t0 = core.now()
    while c:poll(0) > 0 do
      assert(core.now() - t0 < (limit or 10), "the jobs did not end")
      local s = c:timeout() or 1
      if EPOLL then readable(c, math.min(s, 1)) else core.sleep(math.min(s, 0.005)) end
    end
  end

  it("keeps its methods apart from the options, and asks nothing of a client with no job", function()
    local c = client(sb, { timeout = 7 })
    assert.equal("function", type(c.timeout))
    assert.equal(7, c.config.timeout)
    assert.equal("r", c:events())
    assert.is_nil(c:timeout())
    if EPOLL then
      assert.equal("number", type(c:pollfd()))
      assert.equal(c:pollfd(), c:pollfd())   -- one descriptor for the client's life
    else
      local fd, why = c:pollfd()
      assert.is_nil(fd)
      assert.truthy(why:find("poll(2)", 1, true), why)
    end
    c:close()
    assert.is_nil(c:pollfd())
    assert.is_nil(c:timeout())
  end)

  it("is due at once after a start; then the descriptor wakes the host when the answer comes #timing",
     function()
    local c = client(held)
    local job = assert(c:start_recall_update(task()))
    assert.equal(0, c:timeout())
    c:poll(0)   -- sent: now only the socket (or libcurl's timeout) brings news
    local s = c:timeout()   -- (libcurl's own timers: a check of the transfer it runs)
    assert.is_true(s > 0, "due again at once, with an answer held 300 ms")
    if EPOLL then
      local t0 = core.now()
      assert.is_false(readable(c, 0.1))             -- nothing yet
      assert.is_true(readable(c, 2))                -- the answer
      assert.is_true(core.now() - t0 >= 0.25, "woke after " .. (core.now() - t0) .. " s")
    end
    host_loop(c)
    assert(job:result())
  end)

  it("counts a Retry-After, the rate limit's slot and a deadline in timeout() #timing", function()
    sb:fault{ kind = "status", status = 503, retry_after = 1, count = 1 }
    local c = client(sb)
    local job = assert(c:start_recall_update(task()))
    local t0 = core.now()
    while sb:stats().requests == 0 or c:timeout() == 0 or c:timeout() < 0.5 do   -- the 503 read
      c:poll(0)
      if core.now() - t0 > 5 then error("the first attempt never ended") end
      if EPOLL then readable(c, 0.05) else core.sleep(0.005) end
    end
    local s = c:timeout()
    assert.is_true(s > 0.8 and s <= 1.05, "Retry-After: 1 is due in " .. s .. " s")
    host_loop(c)
    assert.equal(2, select(1, job:result()).attempts)

    local paced = client(sb, { rate = 2 })
    local first = assert(paced:start_recall_update(task()))
    assert(paced:start_recall_update(task()))
    t0 = core.now()
    while not first:done() do   -- the first goes at once; the second waits for its slot
      paced:poll(0)
      if EPOLL then readable(paced, 0.02) else core.sleep(0.005) end
    end
    s = paced:timeout()
    local left = 0.5 - (core.now() - t0)
    assert.is_true(s ~= nil and s <= 0.5 and s >= left - 0.05,
                   "the next slot at rate 2 is due in " .. tostring(s) .. " s, not about " .. left)
    host_loop(paced)

    local silent = assert(socket.bind("127.0.0.1", 0))   -- listens, never answers
    local _, port = silent:getsockname()
    local c2 = assert(require("itnio").new{ api_key = "k", api_secret = "s",
                                           base_url = "http://127.0.0.1:" .. port, max_retries = 0 })
    local late = assert(c2:start_recall_update(task(), { deadline = 0.5 }))
    c2:poll(0)
    s = c2:timeout()
    assert.is_true(s > 0 and s <= 0.5, "a deadline 0.5 s away is due in " .. s)   -- (or libcurl's timer)
    host_loop(c2)
    silent:close()
    assert.equal("deadline", select(2, late:result()).reason)
  end)
end)

describe("itnio.core's multi handle", function()
  it("refuses bad arguments before anything is added", function()
    local m = core.multi_new{}
    assert.has_error(function() m:add("PUT", "http://127.0.0.1:9/", {}, "", 1, 1) end)
    assert.has_error(function() m:add("POST", "http://127.0.0.1:9/ x", {}, "", 1, 1) end)
    assert.has_error(function() m:add("POST", "http://127.0.0.1:9/", { "X: a\r\nY: b" }, "", 1, 1) end)
    assert.has_error(function() m:add("POST", "http://127.0.0.1:9/", {}, "", -1, 1) end)
    assert.has_error(function() m:wait(-1) end)
    assert.has_error(function() m:take(12345) end)
    assert.is_nil(m:cancel(12345))
    assert.equal(0, m:count())
    assert.equal(0, m:perform())
    assert.is_nil(m:next_done())
    m:close()
    m:close()
    assert.has_error(function() m:perform() end)
    assert.truthy(tostring(m):find("closed", 1, true))
  end)

  it("reports every transfer once, and a stale id finds nothing", function()
    local m = core.multi_new{}
    local ids = {}
    for i = 1, 40 do ids[i] = m:add("GET", "http://127.0.0.1:9/", {}, nil, 2, 1) end
    local seen, n = {}, 0
    local t0 = core.now()
    while n < 40 and core.now() - t0 < 10 do
      m:perform()
      local id = m:next_done()
      while id do
        assert.is_nil(seen[id])
        seen[id] = true
        n = n + 1
        local status, err = m:take(id)
        assert.is_nil(status)
        assert.equal("connect", err.reason)
        assert.is_false(err.sent)
        id = m:next_done()
      end
      if n < 40 then m:wait(0.05) end
    end
    assert.equal(40, n)
    for i = 1, 40 do assert.is_true(seen[ids[i]]) end
    -- slots are reused with a new generation: old ids name nothing
    local fresh = m:add("GET", "http://127.0.0.1:9/", {}, nil, 2, 1)
    for i = 1, 40 do assert.not_equal(fresh, ids[i]); assert.is_nil(m:cancel(ids[i])) end
    assert.is_false(m:cancel(fresh))
    m:close()
  end)
end)

describe("the event backend", function()
  it("is the one the suite expects (make test-poll runs these specs on poll(2))", function()
    assert.equal(os.getenv("ITNIO_EXPECT_EVENTS") or "epoll", core.EVENTS)
  end)
end)
