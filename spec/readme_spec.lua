-- README's blocks run as written, and what it says of other files is checked against them: a
-- README that lies is a bug. Every fenced block of README is claimed here (the last test
-- fails on one that is not): run, or checked to be what the Makefile or another spec runs.
-- The pages of doc/ have theirs in spec/docs_spec.lua.
local docs    = require "support.docs"
local shell   = require "support.shell"
local sandbox = require "support.sandbox"

local README = "README.md"
local q, ROOT = shell.quote, shell.root
local cov = docs.Coverage()

-- A command that runs programs of its own (make, a sandbox) tests the same thing whatever
-- the runner's Lua: it runs once, under Lua 5.4 (make test), not again under each other Lua.
local it_once = (_VERSION == "Lua 5.4" and not jit) and it or function() end

local function read(path) return assert(shell.read(ROOT .. "/" .. path), path) end

-- Runs make in the checkout as a user would, not as a child of the make that runs the specs.
local function make(args)
  return shell.run("cd " .. q(ROOT) .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS " .. args)
end

describe("README's first two commands", function()
  local block = cov:claim(README, "## Try it", "sh")

  it("are its first block: make demo, then make check", function()
    assert.equal(block, docs.blocks(README)[1].text)
    assert.same({ "make demo", "make check" }, docs.commands(block))
  end)

  it_once("make demo updates a task on the sandbox over HTTPS and shows it stored", function()
    local port, tls_port = sandbox.free_ports()
    local out, ok = make("DEMO_PORT=" .. port .. " DEMO_TLS_PORT=" .. tls_port .. " "
      .. docs.commands(block)[1] .. " --no-print-directory")
    assert(ok, out)
    assert.truthy(out:find("sandbox: https://localhost:" .. tls_port, 1, true), out)
    assert.truthy(out:find("updated task: code 0 (success) after 1 attempt(s), HTTP 200", 1, true), out)
    assert.truthy(out:find('"keyId":299', 1, true), out)
  end)

  it("make check is the one test command: CI runs it, and it ends with N passed, N failed", function()
    assert.equal("make check", docs.commands(block)[2])
    assert.truthy(read("Makefile"):find("\ncheck: deps\n\t@tools/check\n", 1, true))
    assert.truthy(read(".ci/run"):find("\nmake check\n", 1, true))
    assert.truthy(read("tools/check"):find('echo "$passed passed, $failed failed"', 1, true))
  end)
end)

describe("README's install", function()
  local install = cov:claim(README, "## Installing", "sh")
  local tree_path = cov:claim(README, "## Installing", "sh", 2)

  -- make rock (in make check) runs both blocks as written, each install into a temporary tree.
  it("is what spec/rock/install.lua runs, in make rock", function()
    local rock = read("spec/rock/install.lua")
    assert.truthy(rock:find('docs.commands(docs.block("README.md", "## Installing", "sh"))', 1, true))
    assert.truthy(rock:find('docs.commands(docs.block("README.md", "## Installing", "sh", 2))', 1, true))
    assert.truthy(read("Makefile"):find("\nrock:\n\t$(call busted,lua5.4,build/lua5.4)"
      .. " spec/rock/install.lua\n", 1, true))
    local suites = assert(read("tools/check"):match('SUITES=%${SUITES:%-"([^"]*)"}'))
    assert.truthy((" " .. suites .. " "):find(" rock ", 1, true), suites)
  end)

  it("installs each of the three rockspecs for Lua 5.4, the client first, and the client for 5.1", function()
    local got = {}
    for _, c in ipairs(docs.commands(install)) do
      local v, spec = c:match("^luarocks %-%-lua%-version (5%.[14]) make %-%-deps%-mode=none "
        .. "(rockspec/%S+%.rockspec)$")
      assert(v, "not a luarocks make of a rockspec: " .. c)
      assert(io.open(ROOT .. "/" .. spec, "rb"), spec .. " does not exist"):close()
      got[#got + 1] = v .. " " .. spec
    end
    assert.same({ "5.4 rockspec/itnio-scm-1.rockspec", "5.4 rockspec/itnio-testing-scm-1.rockspec",
                  "5.4 rockspec/itnio-cli-scm-1.rockspec", "5.1 rockspec/itnio-scm-1.rockspec" }, got)
  end)

  it("says how to reach a --tree install, and that LuaRocks' line on lua-cjson is expected", function()
    assert.same({ 'eval "$(luarocks --lua-version 5.4 path --tree DIR)"' }, docs.commands(tree_path))
    local section = docs.section(README, "## Installing")
    assert.truthy(section:find("Missing dependencies for itnio scm-1:", 1, true))
    assert.truthy(section:find("lua-cjson (not installed)", 1, true))
  end)
end)

describe("README's client in fifteen lines", function()
  local code = cov:claim(README, "## The client in fifteen lines", "lua")
  -- The command README gives to run a script from the checkout runs the block.
  local run_cmd = docs.commands(cov:claim(README, "## The client in fifteen lines", "sh"))
  assert(#run_cmd == 1 and run_cmd[1]:find(" script%.lua$"), "README's command to run a script")

  local function run_script(env)
    local path = os.tmpname()
    shell.write(path, code)
    local parts = {}
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
    local out = shell.run("cd " .. q(ROOT) .. " && " .. table.concat(parts, " ") .. " "
      .. docs.substitute(run_cmd[1], { { "script.lua", q(path) } }))
    os.remove(path)
    return out
  end

  it("updates a task on the sandbox", function()
    local sb = sandbox.start{}
    local ok, out = pcall(run_script, {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.http_url })
    local stored = sb:task(299)
    sb:stop()
    assert(ok, out)
    assert.equal("updated after 1 attempt(s)\n", out)
    assert.equal(1, stored.updates)
  end)

  it("prints a one-line AuthError for a wrong secret", function()
    local sb = sandbox.start{}
    local ok, out = pcall(run_script, {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = "wrong", ITNIO_BASE_URL = sb.http_url })
    sb:stop()
    assert(ok, out)
    assert.truthy(out:find("^AuthError: .- %(code %-1, HTTP 200, 1 attempt%)\tfalse\n$"), out)
  end)

  it("reaches the sandbox over HTTPS with ITNIO_CAFILE", function()
    local sb = sandbox.start{}
    local ok, out = pcall(run_script, {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.https_url,
      ITNIO_CAFILE = sb.cafile })
    sb:stop()
    assert(ok, out)
    assert.equal("updated after 1 attempt(s)\n", out)
  end)

  it("is right about options: a near miss is a ConfigError naming the option, "
    .. "and they live in client.config", function()
    local itnio = require "itnio"
    local none, err = itnio.new{ api_key = "k", api_secret = "s", timout = 3 }
    assert.is_nil(none)
    assert.is_true(itnio.errors.is(err, itnio.errors.ConfigError))
    assert.truthy(tostring(err):find("'timeout'", 1, true), tostring(err))
    local client = assert(itnio.new{ api_key = "k", api_secret = "s" })
    assert.equal(10, client.config.timeout)
    assert.is_nil(rawget(client, "timeout"))
    assert.truthy(docs.section(README, "## The client in fifteen lines")
      :find("`client.config.timeout`", 1, true))
  end)
end)

describe("README's facts", function()
  it("says that a retry may apply an update twice, and which errors may have reached the server", function()
    local promises = docs.section(README, "## What the client promises")
    local item = promises:match("%*%*A retry may apply an update twice%.%*%*(.-)\n%- ")
    assert.truthy(item, "no item on retries that apply an update twice")
    assert.truthy(item:find("`sent`", 1, true))
    assert.truthy(item:find("timeout", 1, true))
  end)

  it("is at most 300 lines", function()
    local n = select(2, read(README):gsub("\n", "\n"))
    assert.is_true(n <= 300, "README has " .. n .. " lines")
  end)
end)

describe("README's map", function()
  local map = docs.section(README, "## Where to read next")
  local block = cov:claim(README, "## Where to read next", "sh")

  it("links every page of doc/", function()
    for _, page in ipairs(docs.pages()) do
      if page ~= README then
        assert.truthy(map:find("](" .. page .. ")", 1, true), "README's map does not link " .. page)
      end
    end
  end)

  it("names make doc, which writes the LDoc reference at build/doc/index.html, and make help", function()
    assert.same({ "make doc", "make help" }, docs.commands(block))
    assert.truthy(block:find("build/doc/index.html", 1, true))
    -- make doc runs LDoc on doc/config.ld, whose pages go to build/doc; make check runs it
    assert.truthy(read("Makefile"):find("\ndoc:\n\tldoc -c doc/config.ld --fatalwarnings .\n", 1, true))
    assert.truthy(read("doc/config.ld"):find('\ndir = "../build/doc"\n', 1, true))
    assert.truthy(read("tools/check"):find('SUITES=${SUITES:-"lint doc ', 1, true))
  end)

  it("has a make help that names every target the Makefile declares phony, each once", function()
    -- make's own database gives the .PHONY targets as make expands them
    local db = make("make -qp 2>/dev/null | grep '^\\.PHONY:'")
    local phony = {}
    for name in (db:match("^%.PHONY:([^\n]*)") or ""):gmatch("%S+") do phony[name] = true end
    assert.is_true(phony.check and phony.help, db)
    local out, ok = make(docs.commands(block)[2] .. " -s --no-print-directory")
    assert(ok, out)
    local listed = {}
    for line in out:gmatch("[^\n]+") do
      local name = assert(line:match("^make (%S+)%s%s+%S"), "a line of make help names no target: " .. line)
      assert.is_nil(listed[name], "make help lists " .. name .. " twice")
      listed[name] = true
    end
    assert.same(phony, listed)
  end)
end)

describe("README's blocks", function()
  it("are each run or checked above, and fenced (an indented block would be missed)", function()
    assert.same({}, cov:unclaimed({ README }))
    assert.same({}, docs.indented(README))
  end)
end)
