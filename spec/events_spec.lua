-- One event per call (itnio.new{ on_call }) and the answer's headers on results and errors,
-- on every path outside nginx: the blocking call, jobs, the batch. Inside nginx:
-- spec/ngx_spec.lua. Against the sandbox, over real sockets.
local errors  = require "itnio.errors"
local sandbox = require "support.sandbox"

local function task(over) return sandbox.task("Events", over) end

describe("on_call", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  local function recorder()
    local events = {}
    return events, function(ev) events[#events + 1] = ev end
  end

  it("hears a blocking call once, with its outcome, code, attempts, duration and reuse", function()
    local events, on_call = recorder()
    local c = sb:client{ on_call = on_call }
    assert(c:recall_update(task()))
    assert(c:recall_update(task()))
    assert.equal(2, #events)
    local ev = events[2]
    assert.equal("recall_update", ev.endpoint)
    assert.equal("ok", ev.outcome)
    assert.equal(0, ev.code)
    assert.equal(200, ev.http_status)
    assert.equal(1, ev.attempts)
    assert.is_true(ev.duration > 0 and ev.duration < 5)
    assert.equal(0, ev.waited)
    assert.is_false(events[1].reused)
    assert.is_true(ev.reused)   -- the second call rode the first one's connection
  end)

  it("names the error class, counts retries, and sums the backoff into waited", function()
    sb:fault{ kind = "status", status = 503, count = 2 }
    local events, on_call = recorder()
    local c = sb:client{ on_call = on_call, max_retries = 2, backoff_base = 0.05, backoff_cap = 0.05 }
    assert(c:recall_update(task()))
    assert.equal(1, #events)
    assert.equal("ok", events[1].outcome)
    assert.equal(3, events[1].attempts)
    assert.is_true(events[1].waited > 0 and events[1].waited <= 0.1 + 1e-9, tostring(events[1].waited))
    sb:fault{ kind = "code", code = -22, msg = "no" }
    local _, err = c:recall_update(task())
    assert.equal("ParameterError", err.kind)
    local ev = events[2]
    assert.equal("ParameterError", ev.outcome)
    assert.equal(-22, ev.code)
    assert.equal(200, ev.http_status)
  end)

  it("hears a task that breaks a rule, and a call on a closed client, though nothing was sent", function()
    local events, on_call = recorder()
    local c = sb:client{ on_call = on_call }
    local _, err = c:recall_update(task{ recallType = 7 })
    assert.equal("ValidationError", err.kind)
    assert.equal("ValidationError", events[1].outcome)
    assert.equal(0, events[1].attempts)
    c:close()
    c:recall_update(task())
    assert.equal("TransportError", events[2].outcome)
    assert.equal(0, sb:stats().requests)
  end)

  it("hears each job and each task of a batch once", function()
    local events, on_call = recorder()
    local c = sb:client{ on_call = on_call }
    local job = assert(c:start_recall_update(task()))
    while c:poll(0.05) > 0 do end
    assert.truthy((job:result()))
    assert.equal(1, #events)
    local tasks = {}
    for i = 1, 10 do tasks[i] = task() end
    tasks[4] = task{ recallType = 9 }
    local results = c:batch_recall_update(tasks, { concurrency = 3 })
    assert.equal(11, #events)
    local by = {}
    for i = 2, 11 do by[events[i].outcome] = (by[events[i].outcome] or 0) + 1 end
    assert.are.same({ ok = 9, ValidationError = 1 }, by)
    assert.truthy(results[1].res)
  end)

  it("never breaks a call when it raises, and says so once", function()
    local c = sb:client{ on_call = function() error({}) end }
    for _ = 1, 3 do assert(c:recall_update(task())) end
    local job = assert(c:start_recall_update(task()))
    while c:poll(0.05) > 0 do end
    assert.truthy((job:result()))
  end)

  it("must be a function", function()
    local c, err = require("itnio").new{ api_key = "k", api_secret = "s", on_call = "log" }
    assert.is_nil(c)
    assert.is_true(errors.is(err, errors.ConfigError))
  end)
end)

describe("the answer's headers", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("are on a result, lower-case, from a plain success too (read when first asked for)", function()
    local c = sb:client()
    local res = assert(c:recall_update(task()))
    assert.is_table(res.headers)
    assert.matches("^application/json", res.headers["content-type"])
    assert.is_string(res.headers.date)
    -- a job's and a batch's results, too
    local job = assert(c:start_recall_update(task()))
    while c:poll(0.05) > 0 do end
    assert.is_string(job:result().headers.date)
    local results = c:batch_recall_update({ task(), task() })
    assert.is_string(results[2].res.headers.date)
  end)

  it("are on an error that came with an answer, and not on one that came without", function()
    sb:fault{ kind = "status", status = 429, retry_after = 7, headers = { ["X-Trace"] = "abc" } }
    local c = sb:client{ max_retries = 0 }
    local _, err = c:recall_update(task())
    assert.equal(429, err.http_status)
    assert.equal("7", err.headers["retry-after"])
    assert.equal("abc", err.headers["x-trace"])
    local dead = sb:client{ base_url = "http://127.0.0.1:9", max_retries = 0 }
    local _, terr = dead:recall_update(task())
    assert.equal("TransportError", terr.kind)
    assert.is_nil(terr.headers)
  end)

  it("never hold the secret, even when the server echoes it in a header", function()
    sb:fault{ kind = "answer", status = 200, body = '{"code":0,"msg":"success","data":null}',
              headers = { ["X-Echo"] = "key " .. sb.api_secret } }
    local res = assert(sb:client():recall_update(task()))
    assert.equal("key <redacted>", res.headers["x-echo"])
    sb:fault{ kind = "answer", status = 200, body = '{"code":-18,"msg":"busy","data":null}',
              headers = { ["X-Echo"] = sb.api_secret } }
    local _, err = sb:client{ max_retries = 0 }:recall_update(task())
    assert.equal("<redacted>", err.headers["x-echo"])
  end)
end)
