-- A second endpoint needs one schema and one row in the core, and nothing else (doc/
-- architecture.md, "A second endpoint"). Run by `make test-endpoint` only, with the core built
-- with TEST_ENDPOINT=1 (csrc/schema.c: test_probe, POST /voice/test/probe, a keyId and an
-- optional note): that build must get client methods, a batch, a sandbox route and a command
-- of the command line, with no other change anywhere. (Not a *_spec.lua: make test leaves it out.)
local core    = require "itnio.core"
local errors  = require "itnio.errors"
local sandbox = require "support.sandbox"

local q = sandbox.shell_quote

local function endpoint_named(name)
  for _, e in ipairs(core.endpoints()) do if e.name == name then return e end end
end

describe("a second endpoint (make test-endpoint)", function()
  local sb
  setup(function()
    assert(endpoint_named("test_probe"), "this spec needs the core built with TEST_ENDPOINT=1")
    sb = sandbox.start{}
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("is named only in the core's schema: nothing else in the tree knows it", function()
    local out = sandbox.run("cd " .. q(sandbox.root) .. " && grep -rlE 'test_probe|test-probe|/voice/test' "
      .. "lua bin csrc examples | sort")
    assert.equal("csrc/schema.c\n", out)
  end)

  it("gets exactly what doc/architecture.md says a second endpoint gets", function()
    local f = assert(io.open(sandbox.root .. "/doc/architecture.md", "rb"))
    local doc = f:read("*a")
    f:close()
    local list = assert(doc:match("What it then gets, with no other change.-\n\n(.-)\n\n"),
                        "no list in the doc")
    local c, checked = sb:client(), 0
    local conf = assert(io.open(sb.prefix .. "/conf/nginx.conf", "rb")):read("*a")
    for item in list:gmatch("%- ([^\n]+)") do
      local method = item:match("^`client:([%w_]+)%(")
      if method then
        method = method:gsub("E$", "test_probe")
        assert.is_function(c[method], item)
      elseif item:find("^`itnio E%-with%-dashes FILE`") then
        local help = sandbox.run("cd " .. q(sandbox.root) .. " && lua5.4 -e "
          .. q(("package.preload['itnio.core'] = package.loadlib(%q, 'luaopen_itnio_core')")
            :format(package.searchpath("itnio.core", package.cpath))) .. " bin/itnio --help")
        assert.truthy(help:find("  test-probe FILE|-", 1, true), help)
      elseif item:find("^the sandbox's route") then
        assert.truthy(conf:find("location = /voice/test/probe {", 1, true))
      else
        error("an item this spec does not know how to check: " .. item)
      end
      checked = checked + 1
    end
    assert.equal(6, checked)
  end)

  it("gets the four methods of a client", function()
    local c = sb:client()
    for _, m in ipairs{ "test_probe", "start_test_probe", "prepare_test_probe", "batch_test_probe" } do
      assert.is_function(c[m], m)
    end
  end)

  it("is checked by the core and answered by the sandbox's route", function()
    local c = sb:client()
    local res = assert(c:test_probe{ keyId = 7, note = "hello" })
    assert.equal(0, res.code)
    assert.equal(1, sb:stats().accepted)
    local _, err = c:test_probe{ keyId = 0, notes = "typo" }
    assert.is_true(errors.is(err, errors.ValidationError))
    assert.truthy(err.message:find("^the probe breaks 2 rules"), err.message)
    local rules = { err.errors[1].rule, err.errors[2].rule }
    table.sort(rules)
    assert.same({ "P1", "P3" }, rules)
    assert.equal(1, sb:stats().requests)   -- nothing was sent for it
  end)

  it("the sandbox refuses a body that breaks its rules, naming them", function()
    local status, body = sb:request("POST", "/voice/test/probe", '{"keyId":-1}',
      { ["Content-Type"] = "application/json", ["Api-Key"] = sb.api_key, Timestamp = "1", Sign = "x" })
    assert.equal(200, status)
    assert.truthy(body:find('"code":-1', 1, true), body)   -- (the Sign first: a bad one is -1)
    local c = sb:client{ passthrough = true }
    local req = assert(c:prepare_test_probe{ keyId = 3 })
    assert.equal("POST", req.method)
    assert.equal(sb.http_url .. "/voice/test/probe", req.url)
    assert.equal('{"keyId":3}', req.body)
  end)

  it("runs as jobs and as a batch", function()
    local c = sb:client()
    local job = assert(c:start_test_probe{ keyId = 1 })
    while c:poll(0.05) > 0 do end
    assert.equal(0, (job:result()).code)
    local results = c:batch_test_probe({ { keyId = 1 }, { keyId = 2 }, { keyId = 0 } }, { concurrency = 2 })
    assert.equal(0, results[1].res.code)
    assert.equal(0, results[2].res.code)
    assert.equal("ValidationError", results[3].err.kind)
    assert.equal(3, sb:stats().accepted)
  end)

  it("is a command of the command line", function()
    local so = package.searchpath("itnio.core", package.cpath)
    local preload = ("package.preload['itnio.core'] = package.loadlib(%q, 'luaopen_itnio_core')"):format(so)
    local function itnio(args, stdin)
      return sandbox.run("cd " .. q(sandbox.root) .. " && printf '%s' " .. q(stdin or "")
        .. " | env ITNIO_API_KEY="
        .. q(sb.api_key) .. " ITNIO_API_SECRET=" .. q(sb.api_secret) .. " ITNIO_BASE_URL=" .. q(sb.http_url)
        .. " lua5.4 -e " .. q(preload) .. " bin/itnio " .. args)
    end
    local help = itnio("--help")
    assert.truthy(help:find("test-probe FILE|-", 1, true), help)
    assert.truthy(help:find("POST /voice/test/probe", 1, true), help)
    local out, ok = itnio("test-probe -", '{"keyId":5,"note":"from the command line"}')
    assert.is_true(ok, out)
    assert.equal("test-probe: done, code 0 (success), 1 attempt(s)\n", out)
    out, ok = itnio("test-probe - --dry-run --json", '{"keyId":0}')
    assert.is_false(ok)
    assert.truthy(out:find('"rule":"P1"', 1, true), out)
    assert.equal(1, sb:stats().accepted)
  end)
end)
