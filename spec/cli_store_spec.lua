-- bin/itnio with a store (--store URL, ITNIO_STORE): the refusals name where the URL came
-- from and never show its password; one update and a campaign keep the account's state in a
-- redis-server of the spec's own; two campaigns at once share one rate; a campaign whose
-- store is killed goes on, saying so once. Tests tagged #timing assert generous bounds.
local cjson    = require "cjson"
local sandbox  = require "support.sandbox"
local shell    = require "support.shell"
local redis    = require "support.redis"
local arrivals = require "support.arrivals"
local core     = require "itnio.core"

local q, ROOT = shell.quote, shell.root
local read, write = shell.read, shell.write

local TASK = '{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
  .. '"nodeList":[{"source":3,"text":"From the command line","lan":"en-US","hangUpSms":0,"toSeat":0}]}'

describe("bin/itnio with a store", function()
  local sb, r, dir

  setup(function()
    sb = sandbox.start{}
    r = redis.start{ password = "cli-St0re-pw" }
  end)
  teardown(function()
    if sb then sb:stop() end
    if r then r:stop() end
  end)
  before_each(function()
    sb:reset()
    r:cli("FLUSHALL")
    dir = shell.tmpdir()
    write(dir .. "/task.json", TASK)
  end)
  after_each(function() shell.run("rm -rf " .. q(dir)) end)

  -- The command line that runs itnio with the sandbox's account and env, in the background
  -- when bg; stdout and stderr go to dir/<name>.out and .err.
  local function command(name, env, args, bg)
    local parts = { "env -u ITNIO_API_KEY -u ITNIO_API_SECRET -u ITNIO_BASE_URL -u ITNIO_CAFILE",
                    "-u ITNIO_STORE",
                    "ITNIO_API_KEY=" .. q(sb.api_key), "ITNIO_API_SECRET=" .. q(sb.api_secret),
                    "ITNIO_BASE_URL=" .. q(sb.http_url) }
    for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
    parts[#parts + 1] = "lua5.4 " .. q(ROOT .. "/bin/itnio") .. " recall-update"
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    local out = dir .. "/" .. name
    local cmd = table.concat(parts, " ") .. " > " .. q(out .. ".out") .. " 2> " .. q(out .. ".err")
      .. " < /dev/null"
    if bg then return "(" .. cmd .. "; echo $? > " .. q(out .. ".status") .. ") > /dev/null 2>&1 &" end
    return cmd .. "; echo $? > " .. q(out .. ".status")
  end
  local function result(name)
    local base = dir .. "/" .. name
    return read(base .. ".out") or "", read(base .. ".err") or "",
           tonumber((read(base .. ".status") or ""):match("%d+"))
  end
  local function run(env, args)
    shell.run(command("run", env, args))
    return result("run")
  end
  local function no_secrets(...)
    for i = 1, select("#", ...) do
      local s = select(i, ...)
      assert.is_nil(s:find(r.password, 1, true), "the store's password is in: " .. s)
      assert.is_nil(s:find(sb.api_secret, 1, true), "the secret is in: " .. s)
    end
  end
  local function store_keys()
    local n = 0
    for k in pairs(r:keys()) do
      assert.truthy(k:find("^itnio:{%x+}:"), k)
      n = n + 1
    end
    return n
  end
  -- A campaign file of n tasks (keyIds from from on, seeded Pending).
  local function campaign_file(name, from, n)
    sb:seed(from, from + n - 1)
    local t = {}
    for i = 1, n do t[i] = TASK:gsub('"keyId":299', '"keyId":' .. (from + i - 1)) end
    write(dir .. "/" .. name, table.concat(t, "\n") .. "\n")
    return dir .. "/" .. name
  end

  it("refuses a store that is not a redis URL with exit 2, naming where it came from, never its password",
     function()
    local out, err, status = run({ ITNIO_STORE = "rediss://:cli-St0re-pw@127.0.0.1:1" },
                                 { dir .. "/task.json" })
    assert.equal(2, status, err)
    assert.truthy(err:find("TLS", 1, true), err)
    assert.truthy(err:find("(it comes from ITNIO_STORE)", 1, true), err)
    no_secrets(out, err)
    out, err, status = run({}, { dir .. "/task.json", "--json",
                                 "--store", "redis://:cli-St0re-pw@127.0.0.1:0" })
    assert.equal(2, status, out)
    local e = cjson.decode(out).error
    assert.equal("ConfigError", e.kind)
    assert.equal("store: the port must be from 1 to 65535 (it comes from --store)", e.message)
    assert.equal("", err)
    no_secrets(out)
    assert.equal(0, sb:stats().requests)
  end)

  it("keeps one update's state in the store (ITNIO_STORE, or --store, which wins)", function()
    local out, err, status = run({ ITNIO_STORE = r.url }, { dir .. "/task.json" })
    assert.equal(0, status, err)
    assert.truthy(out:find("done, code 0", 1, true), out)
    assert.equal("", err)
    assert.is_true(store_keys() >= 1)   -- (the members' count, at least: its state is there)
    r:cli("FLUSHALL")
    out, err, status = run({ ITNIO_STORE = "redis://127.0.0.1:1" }, { dir .. "/task.json", "--store", r.url })
    assert.equal(0, status, err)
    assert.equal("", err)
    assert.is_true(store_keys() >= 1)
    no_secrets(out, err)
  end)

  it("runs two campaigns at once on one rate through the store #timing", function()
    local a, b = campaign_file("a.jsonl", 7001, 10), campaign_file("b.jsonl", 7101, 10)
    local t0 = core.now()
    local function args(file)
      return { "--batch", file, "--rate", "10", "--store", r.url, "--no-progress" }
    end
    shell.run(command("a", {}, args(a), true) .. " " .. command("b", {}, args(b), true) .. " wait")
    local took = core.now() - t0
    for _, name in ipairs{ "a", "b" } do
      local out, err, status = result(name)
      assert.equal(0, status, err)
      no_secrets(out, err)
    end
    -- 20 attempts at 10 a second between them: 1.9 s at least (each alone would take 0.9 s)
    assert.is_true(took >= 1.9 * 0.9, ("two campaigns of 10 at a shared 10/s took %.2f s"):format(took))
    assert.equal(20, sb:stats().accepted)
    local times = sb:arrivals()
    assert.equal(20, #times)
    local most = arrivals.most_within(times, 1)
    assert.is_true(most <= 10 + 1 + 1, most .. " requests within one second at a rate of 10")
  end)

  it("goes on when the store is killed mid-campaign, saying so once, never its password", function()
    local file = campaign_file("c.jsonl", 7201, 30)
    shell.run(command("c", {}, { "--batch", file, "--rate", "20", "--store", r.url, "--no-progress" }, true))
    core.sleep(0.5)
    r:kill()
    local t0 = core.now()
    while not read(dir .. "/c.status") and core.now() - t0 < 20 do core.sleep(0.05) end
    r:restart()
    local out, err, status = result("c")
    assert.equal(0, status, err)
    local n = 0
    for l in out:gmatch("[^\n]+") do
      assert.is_true(cjson.decode(l).ok, l)
      n = n + 1
    end
    assert.equal(30, n)
    local said = 0
    for _ in err:gmatch("is away") do said = said + 1 end
    assert.equal(1, said, err)
    no_secrets(out, err)
  end)
end)
