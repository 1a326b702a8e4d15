-- State that nginx workers share (itnio.new{ shared_dict }): a real nginx with 4 workers, each
-- connection given to one of them by the kernel (reuseport), one lua_shared_dict. The clock
-- offset one worker learns, the rate limit and the breaker hold for all four.
-- Tests tagged #timing assert generous bounds on elapsed time.
local cjson   = require "cjson"
local sandbox = require "support.sandbox"
local nginx   = require "support.nginx"
local shell   = require "support.shell"

local query = nginx.query

describe("a fleet of 4 nginx workers with a shared_dict", function()
  local srv, sb

  setup(function()
    srv = nginx.start{
      workers = 4, reuseport = true,
      http = "lua_shared_dict itnio_fleet 1m;",
      server = [[location /fleet/ { content_by_lua_block { require("support.fleet_cases").run() } }]],
    }
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() assert.equal(200, (srv:get("/fleet/flush"))) end)
  after_each(function() if sb then sb:stop(); sb = nil end end)

  local function args(over)
    local a = { base = sb.http_url, key = sb.api_key, secret = sb.api_secret }
    for k, v in pairs(over or {}) do a[k] = v end
    return a
  end
  -- One request on a fresh connection (so the kernel picks a worker anew): the decoded answer.
  local function get(case, over)
    local status, body = srv:get("/fleet/" .. case .. "?" .. query(args(over)))
    assert.equal(200, status, body)
    return cjson.decode(body)
  end
  -- Requests until every one of the 4 workers has served one: the answers, by worker.
  local function each_worker(case, over)
    local by, seen = {}, 0
    for _ = 1, 400 do
      local r = get(case, over)
      if not by[r.worker] then by[r.worker], seen = r, seen + 1 end
      if seen == 4 then return by end
    end
    error("the kernel never gave a connection to all 4 workers")
  end

  it("learns the clock offset once for all: the sandbox sees one -16, not four", function()
    sb = sandbox.start{ skew = 3600 }
    local first = get("update")
    assert.is_true(first.results[1].ok, first.results[1].message)
    assert.equal(2, first.results[1].attempts)   -- the -16, then the resend
    local by = each_worker("update")
    for w = 0, 3 do
      assert.is_true(by[w].results[1].ok)
      assert.equal(1, by[w].results[1].attempts, "worker " .. w .. " had to learn the clock again")
    end
    -- every call but the first went once: one -16 in all
    local st = sb:stats()
    assert.equal(st.accepted + 1, st.requests)
  end)

  it("holds rate = 100 across the four workers, in total, within 10% #timing", function()
    sb = sandbox.start{}
    local N, PER = 4, 50
    local url = srv.url .. "/fleet/update?" .. query(args{ rate = 100, n = PER })
    local cmd = {}
    for i = 1, N do
      cmd[i] = "curl -s " .. shell.quote(url) .. " > " .. shell.quote(srv.prefix .. "/rate" .. i) .. " &"
    end
    local t0 = require("itnio.core").now()
    assert(select(2, shell.run(table.concat(cmd, " ") .. " wait")))
    local took = require("itnio.core").now() - t0
    local workers = {}
    for i = 1, N do
      local f = assert(io.open(srv.prefix .. "/rate" .. i))
      local r = cjson.decode(f:read("*a"))
      f:close()
      for _, o in ipairs(r.results) do assert.is_true(o.ok, o.message) end
      workers[r.worker] = true
    end
    local distinct = 0
    for _ in pairs(workers) do distinct = distinct + 1 end
    assert.is_true(distinct >= 2, "all four requests landed on one worker")
    local ideal = (N * PER - 1) / 100
    assert.is_true(took >= ideal * 0.9 and took <= ideal * 1.1 + 0.5,
                   ("%d calls at 100 a second over %d workers took %.2f s (ideal %.2f)")
                     :format(N * PER, distinct, took, ideal))
    assert.equal(N * PER, sb:stats().accepted)
  end)

  it("fails every worker's calls fast once one worker opened the breaker", function()
    sb = sandbox.start{}
    sb:fault{ kind = "status", status = 503, count = 3 }
    local opened = get("update", { failures = 3, n = 3 })
    for i = 1, 3 do assert.equal("HttpError", opened.results[i].kind) end
    local by = each_worker("update", { failures = 3 })
    for w = 0, 3 do
      local o = by[w].results[1]
      assert.equal("CircuitOpenError", o.kind, "worker " .. w)
      assert.is_true(o.retry_after > 0)
    end
    assert.equal(3, sb:stats().requests)   -- nothing more reached the server
  end)

  it("shares the batch's retry budget: what one worker spent, another does not have", function()
    sb = sandbox.start{}
    sb:fault{ kind = "status", status = 503, count = 1000 }
    local a = get("batch", { n = 6, retry_budget = 2, max_retries = 3 })
    assert.equal(8, sb:stats().requests)   -- 6 tasks, 2 retries: the budget is spent
    local seen = { [a.worker] = true }
    local b
    for _ = 1, 200 do   -- a batch on another worker
      b = get("batch", { n = 6, retry_budget = 2, max_retries = 3 })
      if not seen[b.worker] then break end
      seen[b.worker] = true
    end
    assert.is_true(b.worker ~= a.worker)
    for _, k in ipairs(b.kinds) do assert.equal("HttpError", k) end
    -- every batch after the first went without a retry: the account's budget is spent
    local st = sb:stats()
    assert.equal(0, (st.requests - 8) % 6)
  end)

  it("refuses a dict that does not exist at itnio.new, with the line to declare it", function()
    sb = sandbox.start{}
    local e = get("update", { dict = "nope" }).config_error
    assert.matches("no lua_shared_dict named nope", e)
    assert.matches("lua_shared_dict nope 1m;", e, 1, true)
  end)

  it("keys the state by a hash of the account, never the key itself", function()
    sb = sandbox.start{}
    get("update", { rate = 50, n = 2 })
    local keys = get("keys").keys
    assert.is_true(#keys > 0)
    for _, k in ipairs(keys) do
      assert.is_nil(k:find(sb.api_key, 1, true), k)
      assert.matches("^itnio:%x+:", k)
    end
  end)
end)
