-- The core's Redis (csrc/redis.c), against a redis-server of its own: the blocking Redis:call
-- and the asynchronous Multi:redis, their replies and every way they fail (a refused
-- password, a refused connection, a server that stops answering, one that is killed), with
-- no message holding the password. ASan and valgrind run this too.
local core = require "itnio.core"
local support = require "support.redis"

local function rd_of(r, over)
  local o = { host = "127.0.0.1", port = r.port, password = r.password, timeout = 0.2, connect_timeout = 0.2 }
  for k, v in pairs(over or {}) do o[k] = v end
  return core.redis_new(o)
end

-- Everything m's commands give, until n have come or seconds pass: key -> { value, failure }.
local function collect(m, n, seconds)
  local got, count, t0 = {}, 0, core.now()
  while count < n and core.now() - t0 < seconds do
    m:wait(0.05)
    while true do
      local k, value, fail = m:take_next()
      if not k then break end
      got[k] = { value = value, fail = fail }
      count = count + 1
    end
  end
  return got, count
end

describe("itnio.core's Redis", function()
  local r
  setup(function() r = support.start{} end)
  teardown(function() if r then r:stop() end end)

  describe("blocking (Redis:call)", function()
    it("gives integers, strings, false for nil, and arrays of those", function()
      local rd = rd_of(r)
      assert.equal("PONG", rd:call("PING"))
      assert.equal("OK", rd:call("SET", "k", "v"))
      assert.equal("v", rd:call("GET", "k"))
      assert.is_false(rd:call("GET", "absent"))
      assert.equal(3, rd:call("INCRBY", "n", 3))
      assert.same({ 1, "two", false, 4 }, rd:call("EVAL", "return {1, 'two', false, 4}", 0))
      assert.equal("1.5", rd:call("SET", "f", 1.5) and rd:call("GET", "f"))   -- numbers go as text
      rd:close()
      rd:close()
      assert.equal("PONG", rd:call("PING"))   -- (closed: it connects again)
    end)

    it("returns an error reply as a failure, and goes on", function()
      local rd = rd_of(r)
      local v, fail = rd:call("NOSUCHCOMMAND")
      assert.is_nil(v)
      assert.equal("error", fail.reason)
      assert.truthy(fail.message:find("unknown command", 1, true), fail.message)
      v, fail = rd:call("EVALSHA", core.sha1("return 1"), 0)
      assert.is_nil(v)
      assert.truthy(fail.message:find("^NOSCRIPT"), fail.message)
      assert.equal("PONG", rd:call("PING"))
    end)

    it("refuses a wrong password as auth, saying nothing of the password", function()
      local rd = rd_of(r, { password = "not-the-Password-7x" })
      local v, fail = rd:call("PING")
      assert.is_nil(v)
      assert.equal("auth", fail.reason)
      assert.is_nil(fail.message:find("not-the-Password-7x", 1, true))
      assert.is_nil(tostring(rd):find("not-the-Password-7x", 1, true))
    end)

    it("fails a refused connection at once, and a stopped server within its timeout", function()
      local free = require("support.shell").free_ports()
      local v, fail = core.redis_new{ host = "127.0.0.1", port = free }:call("PING")
      assert.is_nil(v)
      assert.equal("connect", fail.reason)
      local rd = rd_of(r)
      assert.equal("PONG", rd:call("PING"))
      r:pause()
      local t0 = core.now()
      v, fail = rd:call("PING")
      local took = core.now() - t0
      r:resume()
      assert.is_nil(v)
      assert.equal("timeout", fail.reason)
      assert.is_true(took >= 0.15 and took < 0.5, took)
      assert.equal("PONG", rd:call("PING"))   -- the next call connects again
    end)

    it("takes SELECT's database, and refuses one that is not there", function()
      local rd = rd_of(r, { db = 3 })
      assert.equal("OK", rd:call("SET", "in3", "x"))
      assert.is_false(rd_of(r):call("GET", "in3"))
      local _, fail = rd_of(r, { db = 99999 }):call("PING")
      assert.equal("auth", fail.reason)
    end)

    it("raises on a bad argument", function()
      assert.has_error(function() rd_of(r):call() end)
      assert.has_error(function() rd_of(r):call("SET", {}, "x") end)
      assert.has_error(function() core.redis_new{} end)
      assert.has_error(function() core.redis_new{ host = "h", port = 0 } end)
    end)
  end)

  describe("asynchronous (Multi:redis)", function()
    it("gives each reply under its command's key, in any number", function()
      local m = core.multi_new{}
      local rd = rd_of(r)
      r:cli("DEL", "ctr")
      local keys = {}
      for i = 1, 50 do keys[i] = m:redis(rd, "INCR", "ctr") end
      assert.is_true(keys[1] > core.MULTI_SLOTS)
      local got, n = collect(m, 50, 3)
      assert.equal(50, n)
      for i = 1, 50 do assert.equal(i, got[keys[i]].value) end
      m:close()
    end)

    it("fails its commands for a wrong password, a refused connection, a stopped and a killed server",
       function()
      local m = core.multi_new{}
      local k = m:redis(rd_of(r, { password = "wrong-Pw-9" }), "PING")
      local got = collect(m, 1, 2)
      assert.equal("auth", got[k].fail.reason)
      assert.is_nil(got[k].fail.message:find("wrong-Pw-9", 1, true))

      local free = require("support.shell").free_ports()
      k = m:redis(core.redis_new{ host = "127.0.0.1", port = free, connect_timeout = 0.2 }, "PING")
      got = collect(m, 1, 2)
      assert.equal("connect", got[k].fail.reason)

      local rd = rd_of(r)
      k = m:redis(rd, "PING")
      got = collect(m, 1, 2)
      assert.equal("PONG", got[k].value)
      r:pause()
      local t0 = core.now()
      k = m:redis(rd, "PING")
      local k2 = m:redis(rd, "PING")
      assert.is_nil((m:take_next()))   -- (nothing waits: nothing is done yet)
      got = collect(m, 2, 2)
      local took = core.now() - t0
      r:resume()
      assert.equal("timeout", got[k].fail.reason)
      assert.equal("timeout", got[k2].fail.reason)
      assert.is_true(took >= 0.15 and took < 0.6, took)
      k = m:redis(rd, "PING")
      assert.equal("PONG", collect(m, 1, 2)[k].value)   -- a new connection

      r:kill()
      k = m:redis(rd, "PING")
      got = collect(m, 1, 2)
      assert.is_truthy(got[k].fail)
      r:restart()
      k = m:redis(rd, "PING")
      assert.equal("PONG", collect(m, 1, 2)[k].value)
      m:close()
    end)

    it("frees what is in flight when the multi handle closes or is collected", function()
      local m = core.multi_new{}
      local rd = rd_of(r)
      r:pause()
      for _ = 1, 5 do m:redis(rd, "PING") end
      m:close()
      r:resume()
      m = core.multi_new{}
      for _ = 1, 5 do m:redis(rd, "PING") end
      m = nil   -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
