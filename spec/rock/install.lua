-- `make rock`: the three rockspecs (rockspec/: the client itnio, the test kit itnio-testing,
-- the command line itnio-cli) against the files on disk, then `luarocks make` of them (Debian's
-- luarocks, offline, --deps-mode=none: lua-cjson and lua-term come from apt) into temporary
-- trees for Lua 5.4 and for Lua 5.1: the client alone (every module of it required from a
-- clean directory with the tree alone on the paths, and a production `require "itnio"`
-- loading nothing of the other two units), then the command line (the installed `itnio`:
-- --help, a dry run, an update and a campaign against a sandbox, under that very Lua), and the
-- exports of the rocks' C modules. Then the installed sandbox, with the client in one tree for
-- two Luas. Its name does not end in _spec, so `make test` (busted spec/) leaves it out.
local sandbox = require "support.sandbox"
local docs = require "support.docs"
local q, run, ROOT = sandbox.shell_quote, sandbox.run, sandbox.root

local ROCKS = { client = "rockspec/itnio-scm-1.rockspec", testing = "rockspec/itnio-testing-scm-1.rockspec",
                cli = "rockspec/itnio-cli-scm-1.rockspec" }
local MULTIARCH = "/usr/lib/" .. (run("cc -print-multiarch"):gsub("%s+$", ""))

-- The unit a module belongs to, by its name.
local function unit_of(name)
  if name:find("^itnio%.testing") then return "testing" end
  if name:find("^itnio%.cli") then return "cli" end
  return "client"
end

-- A rockspec is plain Lua assignments: run it in an empty environment, return its globals.
local function load_rockspec(path)
  local f = assert(io.open(ROOT .. "/" .. path, "rb"))
  local text = f:read("*a")
  f:close()
  local env = {}
  local chunk
  if setfenv then   -- Lua 5.1 and LuaJIT
    chunk = assert(loadstring(text, "@" .. path))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, "@" .. path, "t", env))
  end
  chunk()
  return env
end

-- Lines of a command's output, sorted.
-- A temporary directory with a copy of what the rock builds from (src/), an empty clean/
-- to run from, and the path of the tree to install into: tmp, tree, clean.
local function copy_source()
  local dir, made = run("mktemp -d")
  assert(made, dir)
  local tmp = dir:gsub("%s+$", "")
  local copied, ok = run("mkdir " .. q(tmp .. "/src") .. " " .. q(tmp .. "/clean") .. " && cd " .. q(ROOT)
    .. " && cp -R csrc lua bin rockspec doc " .. q(tmp .. "/src"))
  assert(ok, copied)
  return tmp, tmp .. "/tree", tmp .. "/clean"
end

local function lines(cmd)
  local out, ok = run(cmd)
  assert(ok, out)
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  table.sort(t)
  return t
end

-- The Lua layer on disk: module name -> file (lua/itnio/x/init.lua is itnio.x).
local function lua_modules_on_disk()
  local mods = {}
  for _, file in ipairs(lines("cd " .. q(ROOT) .. " && find lua/itnio -name '*.lua'")) do
    local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    mods[name] = file
  end
  return mods
end

describe("the rockspecs", function()
  local specs = {}
  for unit, path in pairs(ROCKS) do specs[unit] = load_rockspec(path) end

  it("build itnio.core from exactly the C files of csrc/, "
    .. "and the command line's module from its own", function()
    local core = specs.client.build.modules["itnio.core"]
    assert.is_table(core)
    local listed = {}
    for _, src in ipairs(core.sources) do listed[#listed + 1] = src end
    table.sort(listed)
    assert.same(lines("cd " .. q(ROOT) .. " && ls csrc/*.c"), listed)
    assert.same({ "csrc/cli/signals.c" }, specs.cli.build.modules["itnio.cli.signals"].sources)
    for unit, spec in pairs(specs) do
      for name, m in pairs(spec.build.modules) do
        if type(m) ~= "string" then
          assert.is_true(name == "itnio.core" and unit == "client"
                           or name == "itnio.cli.signals" and unit == "cli",
                         unit .. ": " .. name)
        end
      end
    end
  end)

  it("map exactly the Lua files of lua/itnio, each once, to its module name, in its unit's rock", function()
    local listed = {}
    for unit, spec in pairs(specs) do
      for name, m in pairs(spec.build.modules) do
        if type(m) == "string" then
          assert.is_nil(listed[name], name .. " is in two rocks")
          assert.equal(unit_of(name), unit, name .. " is in the " .. unit .. " rock")
          listed[name] = m
        end
      end
    end
    assert.same(lua_modules_on_disk(), listed)
  end)

  it("install the scripts of their units, "
    .. "and the test kit and the command line stand on the client", function()
    assert.is_nil(specs.client.build.install)
    assert.same({ "bin/itnio-sandbox" }, specs.testing.build.install.bin)
    assert.same({ "bin/itnio" }, specs.cli.build.install.bin)
    for _, unit in ipairs{ "testing", "cli" } do
      local deps = table.concat(specs[unit].dependencies, " ")
      assert.truthy((" " .. deps .. " "):find(" itnio ", 1, true), unit .. ": " .. deps)
      for _, b in ipairs(specs[unit].build.install.bin) do
        assert(io.open(ROOT .. "/" .. b, "rb"), b .. " is missing"):close()
      end
    end
  end)
end)

-- `luarocks make` builds in its current directory (csrc/*.o, itnio/core.so there), so it runs in
-- a copy of what the rockspec needs, never in the checkout.
for _, v in ipairs { "5.4", "5.1" } do
  describe("luarocks make for Lua " .. v, function()
    local tmp, tree, clean, out, ok
    local paths   -- LUA_PATH and LUA_CPATH: the tree, and the system's modules (lua-cjson, lua-term)
    local sb      -- the sandbox the installed itnio updates a task on

    local cli_out, cli_ok   -- the command line's rock, installed after the client was tried alone

    setup(function()
      tmp, tree, clean = copy_source()
      -- 5.1 also gives CURL_INCDIR, as a user whose curl lives elsewhere would: it must be used.
      local extra = v == "5.1" and (" CURL_INCDIR=" .. q(MULTIARCH:gsub("/lib/", "/include/"))) or ""
      out, ok = run("cd " .. q(tmp .. "/src") .. " && luarocks --lua-version " .. v .. " --tree "
        .. q(tree) .. " make --deps-mode=none " .. ROCKS.client .. extra)
      local share, lib = tree .. "/share/lua/" .. v, tree .. "/lib/lua/" .. v
      paths = "env -u LUA_INIT -u LUA_INIT_5_4 -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
        .. " LUA_PATH=" .. q(share .. "/?.lua;" .. share .. "/?/init.lua;/usr/share/lua/" .. v .. "/?.lua;"
                             .. "/usr/share/lua/" .. v .. "/?/init.lua")
        .. " LUA_CPATH=" .. q(lib .. "/?.so;" .. MULTIARCH .. "/lua/" .. v .. "/?.so")
      sb = sandbox.start{}
    end)
    teardown(function()
      if sb then sb:stop() end
      if tmp then run("rm -rf -- " .. q(tmp)) end
    end)

    it("builds and installs offline, against the Lua " .. v .. " headers", function()
      assert.is_true(ok, out)
      assert.truthy(out:find("-I/usr/include/lua" .. v .. " ", 1, true), out)
      if v == "5.1" then
        assert.truthy(out:find("-I" .. MULTIARCH:gsub("/lib/", "/include/"), 1, true), out)
      end
      assert(io.open(tree .. "/lib/lua/" .. v .. "/itnio/core.so", "rb"), out):close()
    end)

    it("loads every module of the client from the tree alone, from a clean directory", function()
      assert.is_true(ok, out)
      local names = { "itnio.core" }
      for name in pairs(lua_modules_on_disk()) do
        if unit_of(name) == "client" then names[#names + 1] = name end
      end
      table.sort(names)
      -- Each module is required, then found again along the paths to show where it came from.
      -- itnio.internal.cosocket needs nginx's `ngx` at load time: a stub, set for it alone.
      local f = assert(io.open(clean .. "/load.lua", "wb"))
      f:write([[
local function where(name)
  for _, paths in ipairs { package.path, package.cpath } do
    for t in paths:gmatch("[^;]+") do
      local file = t:gsub("%?", (name:gsub("%.", "/")))
      local h = io.open(file, "rb")
      if h then h:close() return file end
    end
  end
end
for i = 1, #arg do
  if arg[i] == "itnio.internal.cosocket" then ngx = { socket = { tcp = function() end } } end
  assert(require(arg[i]))
  ngx = nil
  io.write(arg[i], " ", where(arg[i]) or "?", "\n")
end
]])
      f:close()
      local cmd = "cd " .. q(clean) .. " && " .. paths .. " lua" .. v .. " load.lua"
      for _, name in ipairs(names) do cmd = cmd .. " " .. name end
      local loaded, loaded_ok = run(cmd)
      assert(loaded_ok, loaded)
      local on_disk, expect = lua_modules_on_disk(), {}
      for _, name in ipairs(names) do   -- lua/itnio/x.lua is installed as <tree>/share/lua/<v>/itnio/x.lua
        local file = name == "itnio.core" and tree .. "/lib/lua/" .. v .. "/itnio/core.so"
          or tree .. "/share/lua/" .. v .. "/" .. on_disk[name]:gsub("^lua/", "")
        expect[#expect + 1] = name .. " " .. file
      end
      assert.equal(table.concat(expect, "\n") .. "\n", loaded)
    end)

    it("gives a production require \"itnio\" with no module of the test kit or the command line", function()
      assert.is_true(ok, out)
      assert.is_nil(io.open(tree .. "/bin/itnio", "rb"), "the client's rock installed a command")
      local loaded, loaded_ok = run("cd " .. q(clean) .. " && " .. paths .. " lua" .. v .. " -e "
        .. q("local itnio = require 'itnio'; local c = assert(itnio.new{ api_key = 'k', api_secret = 's' });"
          .. " for name in pairs(package.loaded) do if name:find('^itnio') then print(name) end end"))
      assert(loaded_ok, loaded)
      assert.is_nil(loaded:find("itnio.testing", 1, true), loaded)
      assert.is_nil(loaded:find("itnio.cli", 1, true), loaded)
      assert.truthy(loaded:find("itnio.internal.runner", 1, true), loaded)
    end)

    it("adds the command line's rock beside it", function()
      cli_out, cli_ok = run("cd " .. q(tmp .. "/src") .. " && rm -f csrc/*.o csrc/cli/*.o"
        .. " && luarocks --lua-version "
        .. v .. " --tree " .. q(tree) .. " make --deps-mode=none " .. ROCKS.cli)
      assert(cli_ok, cli_out)
      assert(io.open(tree .. "/lib/lua/" .. v .. "/itnio/cli/signals.so", "rb"), cli_out):close()
    end)

    it("installs an itnio command whose --help exits 0", function()
      assert.is_true(cli_ok, cli_out)
      local help, help_ok = run("cd " .. q(clean) .. " && " .. paths .. " " .. q(tree .. "/bin/itnio")
        .. " --help")
      assert(help_ok, help)
      assert.truthy(help:find("^usage: itnio recall%-update"), help)
      local version = run("cd " .. q(clean) .. " && " .. paths .. " " .. q(tree .. "/bin/itnio")
        .. " --version")
      assert.truthy(version:find("^itnio %d+%.%d+%.%d+\n$"), version)
    end)

    -- The installed command runs under the rock's Lua (its wrapper says which), so a construct
    -- of a later Lua in bin/itnio fails here, not for the user: it reads the task from a file
    -- in the dry run and from standard input in the update, the two ways it reads.
    it("installs an itnio command that checks and updates a task under Lua " .. v, function()
      assert.is_true(cli_ok, cli_out)
      local task = assert(io.open(clean .. "/task.json", "wb"))
      task:write('{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
        .. '"nodeList":[{"source":1,"voiceFileId":"rock-' .. v .. '.wav","hangUpSms":0,"toSeat":0}]}')
      task:close()
      local itnio = "cd " .. q(clean) .. " && " .. paths .. " ITNIO_API_KEY=" .. q(sb.api_key)
        .. " ITNIO_API_SECRET=" .. q(sb.api_secret) .. " ITNIO_BASE_URL=" .. q(sb.http_url) .. " "
        .. q(tree .. "/bin/itnio") .. " recall-update "

      local dry, dry_ok = run(itnio .. "task.json --dry-run")
      assert(dry_ok, dry)
      local request_line = "POST " .. sb.http_url .. "/voice/recallFlow/update\n"
      assert.equal(request_line, dry:sub(1, #request_line))
      assert.truthy(dry:find('"voiceFileId":"rock-' .. v .. '.wav"', 1, true), dry)
      assert.equal(0, sb:stats().requests)

      local sent, sent_ok = run(itnio .. "- < task.json")
      assert(sent_ok, sent)
      assert.equal("recall-update: done, code 0 (success), 1 attempt(s)\n", sent)
      assert.equal(1, sb:stats().requests)
      assert.equal("rock-" .. v .. ".wav", sb:task(299).task.nodeList[1].voiceFileId)
    end)

    -- A campaign with the installed command: a file of tasks, a journal, a resume.
    it("installs an itnio command that runs a campaign and resumes it under Lua " .. v, function()
      assert.is_true(cli_ok, cli_out)
      sb:reset()
      local f = assert(io.open(clean .. "/tasks.jsonl", "wb"))
      for _, id in ipairs{ 299, 301 } do
        f:write('{"keyId":', id, ',"recallType":0,"recallInterval":30,"recallNum":1,'
          .. '"nodeList":[{"source":1,"voiceFileId":"rock.wav","hangUpSms":0,"toSeat":0}]}\n')
      end
      f:write("not a task\n")
      f:close()
      local itnio = "cd " .. q(clean) .. " && " .. paths .. " ITNIO_API_KEY=" .. q(sb.api_key)
        .. " ITNIO_API_SECRET=" .. q(sb.api_secret) .. " ITNIO_BASE_URL=" .. q(sb.http_url) .. " "
        .. q(tree .. "/bin/itnio") .. " recall-update --batch tasks.jsonl --rate 50"
      local first = run(itnio .. " 2>/dev/null; echo \"exit=$?\"")
      assert.truthy(first:find("exit=3"), first)   -- a line that is no task
      assert.truthy(first:find('{"line":1,"keyId":299,"ok":true,"attempts":1}', 1, true), first)
      assert.truthy(first:find('"line":3,"keyId":null,"ok":false,"kind":"InputError"', 1, true), first)
      assert.equal(2, sb:stats().requests)
      local again = run(itnio .. " 2>&1; echo \"exit=$?\"")
      assert.truthy(again:find("3 of them from the journal", 1, true), again)
      assert.truthy(again:find("exit=3"), again)
      assert.equal(2, sb:stats().requests)
    end)

    it("exports luaopen_itnio_core and nothing else from the rock's core.so "
      .. "(and the same of signals.so)", function()
      assert.is_true(ok, out)
      local exports, exports_ok = run(q(ROOT .. "/tools/check-exports") .. " "
        .. q(tree .. "/lib/lua/" .. v .. "/itnio/core.so"))
      assert(exports_ok, exports)
      exports, exports_ok = run(q(ROOT .. "/tools/check-exports") .. " "
        .. q(tree .. "/lib/lua/" .. v .. "/itnio/cli/signals.so") .. " luaopen_itnio_cli_signals")
      assert(exports_ok, exports)
    end)
  end)
end

-- The sandbox as a user gets it: README's install commands as written ("Installing": the three
-- rocks for Lua 5.4, then the client for Lua 5.1 too, as the sandbox runs in nginx's LuaJIT,
-- which loads the 5.1 core), each into one tree (`--tree DIR` put in); the tree's paths from
-- README's `luarocks path` line; and, from a clean directory, the installed itnio-sandbox
-- started, a task updated with the installed itnio (still under Lua 5.4: the 5.1 install
-- touched no command), a fault injected through the control plane and met, and the sandbox
-- stopped; and a spec of the user's own run against the installed client and test kit.
describe("the installed sandbox", function()
  local tmp, tree, clean, env, installed

  setup(function()
    tmp, tree, clean = copy_source()
    local logs = {}
    installed = true
    local install = docs.commands(docs.block("README.md", "## Installing", "sh"))
    assert(#install == 4, "README's install commands")
    for _, cmd in ipairs(install) do
      local into, n = cmd:gsub("^(luarocks %-%-lua%-version %S+) ",
                               "%1 --tree " .. q(tree):gsub("%%", "%%%%") .. " ")
      assert(n == 1, "not a luarocks command: " .. cmd)
      local o, good = run("cd " .. q(tmp .. "/src") .. " && rm -f csrc/*.o csrc/cli/*.o && " .. into)
      logs[#logs + 1] = o
      installed = installed and good
    end
    installed = installed or table.concat(logs, "\n")
    local path = docs.commands(docs.block("README.md", "## Installing", "sh", 2))
    assert(#path == 1, "README's luarocks path line")
    env = "cd " .. q(clean) .. " && " .. docs.substitute(path[1], { { "DIR", q(tree) } }) .. " && "
  end)
  teardown(function()
    if tree then run(env .. "itnio-sandbox stop --prefix " .. q(clean .. "/sb")) end
    if tmp then run("rm -rf -- " .. q(tmp)) end
  end)

  it("leaves each command under the Lua it was installed for (no itnio~ beside it)", function()
    assert(installed == true, installed)
    for _, name in ipairs{ "itnio", "itnio-sandbox" } do
      local wrapper = assert(io.open(tree .. "/bin/" .. name, "rb"), name):read("*a")
      assert.truthy(wrapper:find("lua5.4", 1, true), wrapper)
      assert.is_nil(io.open(tree .. "/bin/" .. name .. "~", "rb"), name .. "~ is there")
    end
    local version, version_ok = run(env .. "itnio --version && lua5.4 -v")
    assert(version_ok, version)
  end)

  it("starts from a clean directory, serves the installed itnio, takes a fault, and stops", function()
    assert(installed == true, installed)
    local port, tls_port = sandbox.free_ports()
    local help, help_ok = run(env .. "itnio-sandbox --help")
    assert(help_ok, help)
    assert.truthy(help:find("POST   /sandbox/faults", 1, true), help)

    local started, ok = run(env .. "itnio-sandbox start --prefix sb --port " .. port
      .. " --tls-port " .. tls_port)
    assert(ok, started)
    local url = started:match("http_url=(%S+)")
    assert.equal("http://127.0.0.1:" .. port, url)
    assert.equal(clean .. "/sb", started:match("prefix=(%S+)"))
    assert.equal("running\n", (run(env .. "itnio-sandbox status --prefix sb")))
    -- (it found the core nginx's LuaJIT loads in the tree's 5.1 part)
    local conf = assert(io.open(clean .. "/sb/conf/nginx.conf", "rb")):read("*a")
    assert.truthy(conf:find(tree .. "/lib/lua/5.1/?.so", 1, true), conf)

    local task = '{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
      .. '"nodeList":[{"source":1,"voiceFileId":"installed.wav","hangUpSms":0,"toSeat":0}]}'
    local itnio = env .. "printf '%s' " .. q(task)
      .. " | ITNIO_API_KEY=sandbox-key ITNIO_API_SECRET=sandbox-secret "
      .. "ITNIO_BASE_URL=" .. q(url) .. " itnio recall-update -"
    local sent, sent_ok = run(itnio)
    assert(sent_ok, sent)
    assert.equal("recall-update: done, code 0 (success), 1 attempt(s)\n", sent)

    local fault, fault_ok = run("curl -fsS -X POST -H 'Content-Type: application/json' --data "
      .. q('{"kind":"status","status":503,"retry_after":0}') .. " " .. url .. "/sandbox/faults")
    assert(fault_ok, fault)
    sent, sent_ok = run(itnio)
    assert(sent_ok, sent)
    assert.equal("recall-update: done, code 0 (success), 2 attempt(s)\n", sent)
    local stats = run("curl -fsS " .. url .. "/sandbox/stats")
    assert.truthy(stats:find('"requests":3', 1, true), stats)

    local stopped, stop_ok = run(env .. "itnio-sandbox stop --prefix sb")
    assert(stop_ok, stopped)
    local status, status_ok = run(env .. "itnio-sandbox status --prefix sb")
    assert.equal("stopped\n", status)
    assert.is_false(status_ok)
  end)

  it("runs a spec of the user's own (examples/testing) with the installed rocks, "
    .. "given only its own lpath", function()
    assert(installed == true, installed)
    local copied, ok = run("mkdir -p " .. q(clean .. "/examples") .. " && cp -R "
      .. q(ROOT .. "/examples/testing") .. " "
      .. q(clean .. "/examples/"))
    assert(ok, copied)
    local out, passed = run(env .. "lua5.4 /usr/bin/busted --lpath='examples/testing/?.lua' examples/testing")
    assert(passed, out)
    assert.truthy(out:find("4 successes / 0 failures / 0 errors / 0 pending", 1, true), out)
  end)
end)
