-- `make rock`: rockspec/itnio-scm-1.rockspec against the files on disk, then `luarocks make` of
-- it (Debian's luarocks, offline, --deps-mode=none: lua-cjson comes from apt) into a temporary
-- tree for Lua 5.4 and for Lua 5.1, and what got installed: every module required from a clean
-- directory with the tree alone on the paths, the installed `itnio` (--help, a dry run and a real
-- update against a sandbox, under that very Lua), and the exports of the rock's core.so. Its
-- name does not end in _spec, so `make test` (busted spec/) leaves it out.
local sandbox = require "support.sandbox"
local q, run, ROOT = sandbox.shell_quote, sandbox.run, sandbox.root

local ROCKSPEC = "rockspec/itnio-scm-1.rockspec"
local MULTIARCH = "/usr/lib/" .. (run("cc -print-multiarch"):gsub("%s+$", ""))

-- The rockspec is plain Lua assignments: run it in an empty environment, return its globals.
local function load_rockspec()
  local f = assert(io.open(ROOT .. "/" .. ROCKSPEC, "rb"))
  local text = f:read("*a")
  f:close()
  local env = {}
  local chunk
  if setfenv then   -- Lua 5.1 and LuaJIT
    chunk = assert(loadstring(text, "@" .. ROCKSPEC))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, "@" .. ROCKSPEC, "t", env))
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

describe("the rockspec", function()
  local spec = load_rockspec()
  local modules = spec.build and spec.build.modules or {}

  it("builds itnio.core from exactly the C files of csrc/", function()
    local core = modules["itnio.core"]
    assert.is_table(core)
    local listed = {}
    for _, s in ipairs(core.sources) do listed[#listed + 1] = s end
    table.sort(listed)
    assert.same(lines("cd " .. q(ROOT) .. " && ls csrc/*.c"), listed)
  end)

  it("maps exactly the Lua files of lua/itnio, each to its module name", function()
    local listed = {}
    for name, m in pairs(modules) do
      if type(m) == "string" then listed[name] = m end
    end
    assert.same(lua_modules_on_disk(), listed)
  end)

  it("has no C module but itnio.core, and installs scripts that exist", function()
    for name, m in pairs(modules) do
      if type(m) ~= "string" then assert.equal("itnio.core", name) end
    end
    for _, b in ipairs(spec.build.install.bin) do
      assert(io.open(ROOT .. "/" .. b, "rb"), b .. " is missing"):close()
    end
  end)
end)

-- `luarocks make` builds in its current directory (csrc/*.o, itnio/core.so there), so it runs in
-- a copy of what the rockspec needs, never in the checkout.
for _, v in ipairs { "5.4", "5.1" } do
  describe("luarocks make for Lua " .. v, function()
    local tmp, tree, clean, out, ok
    local paths   -- LUA_PATH and LUA_CPATH: the tree, and the system's C modules for cjson
    local sb      -- the sandbox the installed itnio updates a task on

    setup(function()
      tmp, tree, clean = copy_source()
      -- 5.1 also gives CURL_INCDIR, as a user whose curl lives elsewhere would: it must be used.
      local extra = v == "5.1" and (" CURL_INCDIR=" .. q(MULTIARCH:gsub("/lib/", "/include/"))) or ""
      out, ok = run("cd " .. q(tmp .. "/src") .. " && luarocks --lua-version " .. v .. " --tree "
        .. q(tree) .. " make --deps-mode=none " .. ROCKSPEC .. extra)
      local share, lib = tree .. "/share/lua/" .. v, tree .. "/lib/lua/" .. v
      paths = "env -u LUA_INIT -u LUA_INIT_5_4 -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
        .. " LUA_PATH=" .. q(share .. "/?.lua;" .. share .. "/?/init.lua")
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

    it("loads every module from the tree alone, from a clean directory", function()
      assert.is_true(ok, out)
      local names = { "itnio.core" }
      for name in pairs(lua_modules_on_disk()) do names[#names + 1] = name end
      table.sort(names)
      -- Each module is required, then found again along the paths to show where it came from.
      -- itnio.transport.ngx needs nginx's `ngx` at load time: a stub, set for it alone.
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
  if arg[i] == "itnio.transport.ngx" then ngx = { socket = { tcp = function() end } } end
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

    it("installs an itnio command whose --help exits 0", function()
      assert.is_true(ok, out)
      local help, help_ok = run("cd " .. q(clean) .. " && " .. paths .. " " .. q(tree .. "/bin/itnio")
        .. " --help")
      assert(help_ok, help)
      assert.truthy(help:find("^usage: itnio recall%-update"), help)
      local version = run("cd " .. q(clean) .. " && " .. paths .. " " .. q(tree .. "/bin/itnio") .. " --version")
      assert.truthy(version:find("^itnio %d+%.%d+%.%d+\n$"), version)
    end)

    -- The installed command runs under the rock's Lua (its wrapper says which), so a construct
    -- of a later Lua in bin/itnio fails here, not for the user: it reads the task from a file
    -- in the dry run and from standard input in the update, the two ways it reads.
    it("installs an itnio command that checks and updates a task under Lua " .. v, function()
      assert.is_true(ok, out)
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
      assert.equal("updated: code 0 (success), 1 attempt(s)\n", sent)
      assert.equal(1, sb:stats().requests)
      assert.equal("rock-" .. v .. ".wav", sb:task(299).task.nodeList[1].voiceFileId)
    end)

    -- A campaign with the installed command: a file of tasks, a journal, a resume.
    it("installs an itnio command that runs a campaign and resumes it under Lua " .. v, function()
      assert.is_true(ok, out)
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

    it("exports luaopen_itnio_core and nothing else from the rock's core.so", function()
      assert.is_true(ok, out)
      local exports, exports_ok = run(q(ROOT .. "/tools/check-exports") .. " "
        .. q(tree .. "/lib/lua/" .. v .. "/itnio/core.so"))
      assert(exports_ok, exports)
    end)
  end)
end

-- The sandbox as a user gets it: the rock installed for Lua 5.4 and for 5.1 into one tree (the
-- sandbox runs in nginx's LuaJIT, which loads the 5.1 core), the tree's paths from `luarocks
-- path` (as README says), and, from a clean directory, the installed itnio-sandbox started,
-- a task updated with the installed itnio, a fault injected through the control plane and
-- met, and the sandbox stopped.
describe("the installed sandbox", function()
  local tmp, tree, clean, env, installed

  setup(function()
    tmp, tree, clean = copy_source()
    local logs = {}
    installed = true
    for _, v in ipairs { "5.1", "5.4" } do
      local o, good = run("cd " .. q(tmp .. "/src") .. " && rm -f csrc/*.o && luarocks --lua-version " .. v
        .. " --tree " .. q(tree) .. " make --deps-mode=none " .. ROCKSPEC)
      logs[#logs + 1] = o
      installed = installed and good
    end
    installed = installed or table.concat(logs, "\n")
    env = "cd " .. q(clean) .. " && eval \"$(luarocks --lua-version 5.4 path --tree " .. q(tree) .. ")\" && "
  end)
  teardown(function()
    if tree then run(env .. "itnio-sandbox stop --prefix " .. q(clean .. "/sb")) end
    if tmp then run("rm -rf -- " .. q(tmp)) end
  end)

  it("starts from a clean directory, serves the installed itnio, takes a fault, and stops", function()
    assert(installed == true, installed)
    local port, tls_port = sandbox.free_ports()
    local help, help_ok = run(env .. "itnio-sandbox --help")
    assert(help_ok, help)
    assert.truthy(help:find("POST   /sandbox/faults", 1, true), help)

    local started, ok = run(env .. "itnio-sandbox start --prefix sb --port " .. port .. " --tls-port " .. tls_port)
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
    local itnio = env .. "printf '%s' " .. q(task) .. " | ITNIO_API_KEY=sandbox-key ITNIO_API_SECRET=sandbox-secret "
      .. "ITNIO_BASE_URL=" .. q(url) .. " itnio recall-update -"
    local sent, sent_ok = run(itnio)
    assert(sent_ok, sent)
    assert.equal("updated: code 0 (success), 1 attempt(s)\n", sent)

    local fault, fault_ok = run("curl -fsS -X POST -H 'Content-Type: application/json' --data "
      .. q('{"kind":"status","status":503,"retry_after":0}') .. " " .. url .. "/sandbox/faults")
    assert(fault_ok, fault)
    sent, sent_ok = run(itnio)
    assert(sent_ok, sent)
    assert.equal("updated: code 0 (success), 2 attempt(s)\n", sent)
    local stats = run("curl -fsS " .. url .. "/sandbox/stats")
    assert.truthy(stats:find('"requests":3', 1, true), stats)

    local stopped, stop_ok = run(env .. "itnio-sandbox stop --prefix sb")
    assert(stop_ok, stopped)
    local status, status_ok = run(env .. "itnio-sandbox status --prefix sb")
    assert.equal("stopped\n", status)
    assert.is_false(status_ok)
  end)
end)
