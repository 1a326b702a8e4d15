-- The pages of doc/ stay true: every fenced block of every page is run, loaded and exercised,
-- or checked to be what the Makefile or another spec runs (the coverage test at the end
-- fails on a block no test claims), and what a page says of other files is checked against
-- them. README's blocks are spec/readme_spec.lua's. doc/architecture.md is left out of the
-- coverage: it holds no command (its one block is the tree), and it is written apart.
local cjson   = require "cjson"
local docs    = require "support.docs"
local shell   = require "support.shell"
local sandbox = require "support.sandbox"
local core    = require "itnio.core"

local q, ROOT = shell.quote, shell.root
local read = function(path) return assert(shell.read(ROOT .. "/" .. path), path) end
local cov = docs.Coverage()

-- A block that runs programs of its own (bin/itnio, nginx, LÖVE, make) tests the same thing
-- whatever the runner's Lua: it runs once, under Lua 5.4 (make test), not again under each
-- other Lua. The Lua blocks run under every runner.
local it_once = (_VERSION == "Lua 5.4" and not jit) and it or function() end

local TASK = '{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
  .. '"nodeList":[{"source":1,"voiceFileId":"hello.wav","hangUpSms":0,"toSeat":0}]}'

-- A fresh directory where a page's commands run as from a checkout: bin/, lua/ and build/
-- are the checkout's (links), so `bin/itnio` there is the checkout's command.
local function workdir(...)
  local out, ok = shell.run("mktemp -d")
  assert(ok, out)
  local dir = out:gsub("%s+$", "")
  for _, name in ipairs{ "bin", "lua", "build", ... } do
    assert(select(2, shell.run("ln -s " .. q(ROOT .. "/" .. name) .. " " .. q(dir .. "/" .. name))))
  end
  return dir
end
local function remove(dir) shell.run("rm -rf -- " .. q(dir)) end

-- The environment of a command that uses the sandbox's account.
local function account(sb, secret)
  return "ITNIO_API_KEY=" .. q(sb.api_key) .. " ITNIO_API_SECRET=" .. q(secret or sb.api_secret)
    .. " ITNIO_BASE_URL=" .. q(sb.http_url)
end

-- The runner's package paths, with the checkout's relative entries made absolute (for a child
-- Lua that runs elsewhere).
local function absolute(paths)
  local out = {}
  for p in paths:gmatch("[^;]+") do out[#out + 1] = p:sub(1, 1) == "/" and p or (ROOT .. "/" .. p) end
  return table.concat(out, ";")
end
local LUA_PATHS = ("package.path = %q; package.cpath = %q")
  :format(absolute(package.path), absolute(package.cpath))

-- A print that keeps its lines.
local function printer()
  local out = {}
  return out, function(...)
    local t = {}
    for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
    out[#out + 1] = table.concat(t, "\t")
  end
end

-- A page's block run as a shell script from dir: its output, and whether it exited 0.
local function sh(dir, script, env)
  return shell.run("cd " .. q(dir) .. " && " .. (env and (env .. " ") or "") .. "sh -ec " .. q(script))
end

-- How many lines the text has.
local function count_lines(text)
  return select(2, text:gsub("[^\n]+", ""))
end

-- Lines of text as a set.
local function line_set(text)
  local set = {}
  for l in text:gmatch("[^\n]+") do set[l] = true end
  return set
end

describe("the pages", function()
  it("each start with a # title line", function()
    for _, page in ipairs(docs.pages()) do
      assert.truthy(docs.read(page):find("^# %S"), page .. " does not start with a # title")
    end
  end)

  it("link only files that exist", function()
    for _, page in ipairs(docs.pages()) do
      if page ~= "doc/architecture.md" then
        local dir = page:match("^(.*)/") or "."
        for target in docs.read(page):gmatch("%]%(([^)#]+)[^)]*%)") do
          if not target:find("^%a+:") then
            local f = io.open(ROOT .. "/" .. dir .. "/" .. target, "rb")
            assert(f, page .. " links " .. target .. ", which does not exist")
            f:close()
          end
        end
      end
    end
  end)
end)

describe("doc/client.md", function()
  local PAGE = "doc/client.md"

  local transport = cov:claim(PAGE, "## A transport of your own", "lua")
  it("runs its transport function example, which prints what its last line says", function()
    local out, print = printer()
    docs.chunk(transport, PAGE, setmetatable({ print = print }, { __index = _G }))()
    local said = assert(transport:match("%-%->%s*([^\n]+)"), "the example's --> line")
    assert.equal(1, #out)
    assert.equal((said:gsub("%s+", " ")), (out[1]:gsub("%s+", " ")))
  end)

  local builders = cov:claim(PAGE, "## Building a task: itnio.recall", "lua")
  it("builds with itnio.recall a task the core accepts, as written (no name left undefined)", function()
    local env = setmetatable({}, { __index = function(_, k)
      local v = _G[k]
      if v == nil then error("the example uses " .. tostring(k) .. ", which it never defines", 2) end
      return v
    end })
    local task = docs.chunk(builders .. "\nreturn task", PAGE, env)()
    local body, errs = core.encode("recall_update", task)
    assert(body, errs and errs[1] and errs[1].message)
    assert.equal(4, #cjson.decode(body).nodeList)
  end)

  it("lists the reasons a TransportError can give, as the transports give them", function()
    local page = docs.read(PAGE)
    for reason in ("connect resolve timeout tls reset too_large protocol deadline phase cancelled "
                   .. "closed other")
        :gmatch("%S+") do
      assert.truthy(page:find("`" .. reason .. "`", 1, true), reason)
      local where = shell.run("cd " .. q(ROOT) .. " && grep -rl -e '\"" .. reason .. "\"' csrc lua/itnio")
      assert.truthy(where:find("%S"), "no transport gives the reason " .. reason)
    end
  end)
end)

describe("doc/core.md", function()
  local PAGE = "doc/core.md"
  local code = cov:claim(PAGE, "## The core in ten lines", "lua")
  local run = docs.commands(cov:claim(PAGE, "## The core in ten lines", "sh"))

  local function check(line)
    local body, sign = line:match("^(.-)\tSign: (%x+)$")
    assert.truthy(body, line)
    assert.equal(32, #sign)
    local decoded = cjson.decode(body)
    assert.equal(299, decoded.keyId)
    assert.equal("Your parcel is here", decoded.nodeList[1].text)
  end

  it("encodes a task and signs it", function()
    local out, print = printer()
    docs.chunk(code, PAGE, setmetatable({ print = print }, { __index = _G }))()
    assert.equal(1, #out)
    check(out[1])
  end)

  it_once("runs it with the command it gives, saved as example.lua", function()
    assert.equal(1, #run)
    local path = os.tmpname()
    shell.write(path, code)
    local out, ok = shell.run("cd " .. q(ROOT) .. " && "
      .. docs.substitute(run[1], { { "example.lua", q(path) } }))
    os.remove(path)
    assert(ok, out)
    check((out:gsub("\n$", "")))
  end)
end)

describe("doc/event-loops.md", function()
  local PAGE = "doc/event-loops.md"
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  local jobs = cov:claim(PAGE, "## Jobs", "lua")
  it("starts a job that sends nothing until love.update polls, then reports it from on_done", function()
    local client = sb:client()
    local out, print = printer()
    local love = {}
    docs.chunk(jobs, PAGE, setmetatable({ client = client, task = sandbox.task("A job"), love = love,
      print = print }, { __index = _G }))()
    assert.equal(0, sb:stats().requests)
    local t0 = core.now()
    while #out == 0 and core.now() - t0 < 10 do
      love.update(1 / 60)
      core.sleep(0.005)
    end
    client:close()
    assert.same({ "updated" }, out)
    assert.equal(1, sb:stats().accepted)
  end)

  local ask = cov:claim(PAGE, "## Jobs", "lua", 2)
  it("asks a job without a callback until it is done", function()
    local client = sb:client()
    local res, err = docs.chunk(ask .. "\nreturn res, err", PAGE,
      setmetatable({ client = client, task = sandbox.task("Asked") }, { __index = _G }))()
    client:close()
    assert(res, tostring(err))
    assert.equal(0, res.code)
    assert.equal("Asked", sb:task(299).task.nodeList[1].text)
  end)

  local batch = cov:claim(PAGE, "## Many tasks at once: the batch", "lua")
  it("runs a batch and prints the one task that broke a rule, by its index", function()
    local client = sb:client()
    local out, print = printer()
    local tasks = { sandbox.task("one"), sandbox.task("two", { keyId = 0 }),
                    sandbox.task("three", { keyId = 301 }) }
    docs.chunk(batch, PAGE, setmetatable({ client = client, tasks = tasks, print = print },
                                         { __index = _G }))()
    client:close()
    assert.equal(1, #out)
    assert.truthy(out[1]:find("^2\tValidationError: "), out[1])
    assert.equal(2, sb:stats().accepted)
  end)

  local loops = cov:claim(PAGE, "## A LÖVE game, and a plain Lua loop", "sh")
  it_once("runs the LÖVE game and the plain loop with the commands it gives", function()
    local _, found = shell.run("command -v love")
    assert(found, "LÖVE is not installed (`love` is not on PATH): run tools/install-deps")
    local port, tls_port = sandbox.free_ports()
    local dir = workdir()
    local script = docs.substitute(loops, {
      { "bin/itnio-sandbox start", "bin/itnio-sandbox start --prefix " .. q(dir .. "/sb")
        .. " --port " .. port
        .. " --tls-port " .. tls_port },
      { "bin/itnio-sandbox stop", "bin/itnio-sandbox stop --prefix " .. q(dir .. "/sb") },
      { "http://127.0.0.1:18080", "http://127.0.0.1:" .. port },
    })
    local out, ok = shell.run("cd " .. q(ROOT) .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS sh -ec "
      .. q(script))
    remove(dir)
    assert(ok, out)
    assert.truthy(out:find("\nupdates 24\nok 24\nfailed 0\n", 1, true), out)
    assert.truthy(out:find("5 of 5 updates succeeded", 1, true), out)
  end)
end)

describe("doc/event-loops.md, a host's own event loop", function()
  local PAGE = "doc/event-loops.md"
  local HEADING = "## A host's own event loop: luv, cqueues, Neovim"

  local drive = cov:claim(PAGE, HEADING, "lua")
  it("shows examples/luv.lua's loop as it is", function()
    assert.truthy(read("examples/luv.lua"):find(drive, 1, true),
                  "the page's luv loop is no longer examples/luv.lua's:\n" .. drive)
  end)

  local hosts = cov:claim(PAGE, HEADING, "sh")
  it_once("runs the three examples with the commands it gives", function()
    local port, tls_port = sandbox.free_ports()
    local dir = workdir()
    local script = docs.substitute(hosts, {
      { "bin/itnio-sandbox start", "bin/itnio-sandbox start --prefix " .. q(dir .. "/sb")
        .. " --port " .. port .. " --tls-port " .. tls_port },
      { "bin/itnio-sandbox stop", "bin/itnio-sandbox stop --prefix " .. q(dir .. "/sb") },
      { "http://127.0.0.1:18080", "http://127.0.0.1:" .. port },
      { "'luafile examples/neovim.lua'", "'luafile examples/neovim.lua' < /dev/null" },
    })
    local out, ok = shell.run("cd " .. q(ROOT) .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS sh -ec "
      .. q(script))
    remove(dir)
    assert(ok, out)
    local _, n = out:gsub("5 of 5 updates succeeded", "")
    assert.equal(3, n, out)
  end)
end)

describe("doc/command-line.md", function()
  local PAGE = "doc/command-line.md"
  local sb, dir
  setup(function()
    sb = sandbox.start{}
    dir = workdir()
    shell.write(dir .. "/task.json", TASK)
  end)
  teardown(function()
    if sb then sb:stop() end
    if dir then remove(dir) end
  end)
  before_each(function() sb:reset() end)

  local block = cov:claim(PAGE, "# The command line", "sh")
  local done = cov:claim(PAGE, "# The command line", "text")
  local ok_json = cov:claim(PAGE, "## Input and output", "json")
  local err_json = cov:claim(PAGE, "## Input and output", "json", 2)

  -- The commands, the account of the first line set to the sandbox's.
  local function commands(secret)
    local cmds = docs.commands(block)
    assert.equal("export ITNIO_API_KEY=... ITNIO_API_SECRET=...", cmds[1])
    local env = account(sb, secret)
    local out = {}
    for i = 2, #cmds do out[#out + 1] = "env " .. env .. " " .. cmds[i] end
    return out
  end

  it_once("sends a task, prints its one line, its JSON, and a dry run that sends nothing", function()
    local cmds = commands()
    assert.equal(3, #cmds)
    local out, ok = shell.run("cd " .. q(dir) .. " && " .. cmds[1])
    assert(ok, out)
    assert.equal(done, out)
    out, ok = shell.run("cd " .. q(dir) .. " && " .. cmds[2])
    assert(ok, out)
    assert.equal(ok_json, out)   -- byte for byte: its keys in the order shown
    out, ok = shell.run("cd " .. q(dir) .. " && " .. cmds[3])
    assert(ok, out)
    assert.equal("POST " .. sb.http_url .. "/voice/recallFlow/update\n", out:match("^[^\n]*\n"))
    assert.truthy(out:find("\nSign: <redacted>\n", 1, true), out)
    assert.equal(2, sb:stats().requests)
  end)

  it_once("prints the error it shows, as one JSON object, for a wrong secret, and exits 1", function()
    local out = shell.run("cd " .. q(dir) .. " && " .. commands("wrong")[2]
      .. " 2>/dev/null; echo \"exit=$?\"")
    local json, status = out:match("^(.-)exit=(%d+)%s*$")
    assert.equal("1", status, out)
    assert.equal(err_json, json)   -- byte for byte: its keys in the order shown
  end)

  local signals = cov:claim(PAGE, "## Signals", "sh")
  it_once("runs a campaign with setsid, safe from a Ctrl-C to its shell's group; "
    .. "SIGTERM stops it #timing", function()
    local start, stop = docs.commands(signals)[1], docs.commands(signals)[2]
    assert.equal(2, #docs.commands(signals))
    local lines = {}
    for i = 1, 40 do lines[i] = TASK end
    shell.write(dir .. "/tasks.jsonl", table.concat(lines, "\n") .. "\n")
    -- The shell that starts the campaign sends SIGINT to its own process group, as a terminal's
    -- Ctrl-C does to its foreground group (it ignores it itself); then it waits 1.5 s for the
    -- campaign to end (the lines in flight take 0.8 s), else it sends SIGTERM as the page says.
    local function run(start_line)
      sb:reset()
      sb:fault{ kind = "delay", ms = 800, count = 1000 }
      for _, f in ipairs{ "campaign.pid", "campaign.log", "results.jsonl", "tasks.jsonl.journal" } do
        os.remove(dir .. "/" .. f)
      end
      local script = "trap '' INT\n" .. start_line .. "\nchild=$!\n"
        .. "while [ ! -s campaign.pid ]; do sleep 0.05; done\nsleep 0.5\nkill -INT 0\n"
        .. "i=0; while kill -0 \"$(cat campaign.pid)\" 2>/dev/null && [ $i -lt 15 ];"
        .. " do sleep 0.1; i=$((i+1)); done\n"
        .. "kill -0 \"$(cat campaign.pid)\" 2>/dev/null && " .. stop .. "\n"
        .. "wait $child; echo \"exit=$?\"\n"
      shell.write(dir .. "/run.sh", script)
      -- (setsid: the group signalled is that of run.sh, not of the specs' runner)
      local out = shell.run("cd " .. q(dir) .. " && env " .. account(sb) .. " setsid sh run.sh")
      return tonumber(out:match("exit=(%d+)")), shell.read(dir .. "/campaign.log") or "", out
    end
    local status, log, out = run(start)
    assert.equal(143, status, out .. log)
    assert.truthy(log:find("stopped by SIGTERM", 1, true), log)
    -- The same campaign started with a plain & stops at the group's SIGINT.
    status, log, out = run(docs.substitute(start, { { "setsid sh -c", "sh -c" } }))
    assert.equal(130, status, out .. log)
    assert.truthy(log:find("stopped by SIGINT", 1, true), log)
  end)
end)

describe("doc/campaigns.md", function()
  local PAGE = "doc/campaigns.md"
  local sb, dir
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    dir = workdir()
  end)
  after_each(function() remove(dir) end)

  local function tasks(n)
    local t = {}
    for i = 1, n do t[i] = TASK end
    shell.write(dir .. "/tasks.jsonl", table.concat(t, "\n") .. "\n")
    assert(select(2, shell.run("cd " .. q(dir) .. " && gzip -k tasks.jsonl")))
  end

  local block = cov:claim(PAGE, "# Campaigns", "sh")
  it_once("runs a campaign, resumes it, dry-runs it and reads one from a pipe, as it says", function()
    tasks(5)
    local cmds = docs.commands(block)
    assert.equal(4, #cmds)
    local function run(i)
      local out = shell.run("cd " .. q(dir) .. " && env " .. account(sb) .. " sh -c " .. q(cmds[i])
        .. " 2>/dev/null; echo \"exit=$?\"")
      local text, status = out:match("^(.-)exit=(%d+)%s*$")
      return text, tonumber(status)
    end
    local _, status = run(1)
    assert.equal(0, status)
    assert.equal(5, count_lines(assert(shell.read(dir .. "/results.jsonl"))))
    assert.equal(5, sb:stats().requests)
    local told
    told, status = run(2)   -- every line is told again from the journal: nothing is sent
    assert.equal(0, status)
    assert.equal(5, count_lines(told))
    assert.equal(5, sb:stats().requests)
    _, status = run(3)
    assert.equal(0, status)
    assert.equal(5, sb:stats().requests)
    _, status = run(4)
    assert.equal(0, status)
    assert.equal(10, sb:stats().requests)
    assert.equal(6, count_lines(assert(shell.read(dir .. "/run.journal"))))   -- its header, and a line each
  end)

  local results = cov:claim(PAGE, "# Campaigns", "json")
  it_once("writes the result lines it shows, for a task and a line that is not one", function()
    shell.write(dir .. "/mixed.jsonl", TASK .. "\n\n[1]\n")
    local out = shell.run("cd " .. q(dir) .. " && env " .. account(sb)
      .. " bin/itnio recall-update --batch mixed.jsonl 2>/dev/null")
    assert.same(line_set(results), line_set(out))
  end)

  local drawn = cov:claim(PAGE, "# Campaigns", "text")
  it_once("shows the progress line in the shape the command draws it", function()
    tasks(5)
    local out = shell.run("cd " .. q(dir) .. " && env " .. account(sb)
      .. " bin/itnio recall-update --batch tasks.jsonl --rate 20 --progress 2>&1 >/dev/null")
    local function shape(text)   -- (the time left in any unit: 5s, 1m15s, 2h05m)
      return (text:gsub("[%w?]+ left", "T left"):gsub("%d+", "N"):gsub("%s+$", ""))
    end
    local frame = assert(out:match("\r(itnio: [^\r\27]*)\27%[K"), out)
    assert.equal(shape(drawn), shape(frame))
  end)

  local engine = cov:claim(PAGE, "## The engine, for a program of yours", "lua")
  it("runs its engine example in a program of its own", function()
    tasks(3)
    shell.write(dir .. "/engine.lua", engine)
    local out, ok = shell.run("cd " .. q(dir) .. " && env " .. account(sb) .. " " .. q(shell.lua) .. " -e "
      .. q(LUA_PATHS) .. " engine.lua")
    assert(ok, out)
    assert.truthy(out:find('{"line":3,"keyId":299,"ok":true,"attempts":1}', 1, true), out)
    assert.truthy(out:find("\nexit status 0, 3 updated\n$"), out)
    assert.equal(4, count_lines(assert(shell.read(dir .. "/tasks.jsonl.journal"))))
  end)
end)

describe("doc/openresty.md", function()
  local PAGE = "doc/openresty.md"

  local block = cov:claim(PAGE, "## The example", "sh")
  it_once("runs the example's commands: nginx with its config, a task posted to it", function()
    local port, tls_port = sandbox.free_ports()
    local example_port
    repeat example_port = sandbox.free_ports() until example_port ~= port and example_port ~= tls_port
    -- A tree shaped like the checkout, with the example's config on a free port (and, for
    -- root, whose workers would run as nobody, `user root root`).
    local dir = workdir("Makefile", "csrc", "tools")
    assert(select(2, shell.run("mkdir -p " .. q(dir .. "/examples/openresty") .. " && ln -s "
      .. q(ROOT .. "/examples/openresty/handler.lua") .. " " .. q(dir .. "/examples/openresty/handler.lua"))))
    local conf = docs.substitute(read("examples/openresty/nginx.conf"),
      { { "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. example_port .. ";" } })
    if shell.run("id -u"):match("^0%s*$") then conf = "user root root;\n" .. conf end
    shell.write(dir .. "/examples/openresty/nginx.conf", conf)
    local script = docs.substitute(block, {
      { "bin/itnio-sandbox start", "bin/itnio-sandbox start --prefix " .. q(dir .. "/sb")
        .. " --port " .. port
        .. " --tls-port " .. tls_port },
      { "bin/itnio-sandbox stop", "bin/itnio-sandbox stop --prefix " .. q(dir .. "/sb") },
      { "http://127.0.0.1:18080", "http://127.0.0.1:" .. port },
      { "http://127.0.0.1:8080/", "http://127.0.0.1:" .. example_port .. "/" },
    })
    local out, ok = shell.run("cd " .. q(dir) .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS sh -ec "
      .. q(script))
    local log = shell.read(dir .. "/examples/openresty/logs/error.log") or ""
    shell.run("cd " .. q(dir) .. " && nginx -p \"$PWD/examples/openresty\" -c nginx.conf -e logs/error.log"
      .. " -s stop; "
      .. "bin/itnio-sandbox stop --prefix " .. q(dir .. "/sb"))
    remove(dir)
    assert(ok, out .. log)
    local answer = cjson.decode((assert(out:match("\n({[^\n]*})\n"), out .. log)))
    assert.is_true(answer.ok, out)
    assert.equal(0, answer.code)
  end)

  it("says the HTTP status the OpenResty handler answers for each error", function()
    local map = assert(read("examples/openresty/handler.lua"):match("local STATUS = (%b{})"),
                       "handler.lua has no STATUS table")
    local para = docs.section(PAGE, "## The example")
    local said = 0
    for kind, status in map:gmatch("(%w+Error) = (%d+)") do
      -- the clause of the sentence that gives the status names the error, or says "other"
      local at = assert(para:find(status, 1, true), "the page does not say the status " .. status)
      local clause = para:sub(at, (para:find("%d%d%d", at + 3) or #para))
      if status ~= "502" then
        assert(clause:find(kind, 1, true),
               "the page's " .. status .. " does not name " .. kind .. ": " .. clause)
      end
      said = said + 1
    end
    assert.is_true(said >= 10)
  end)
end)

describe("doc/embedding.md", function()
  local PAGE = "doc/embedding.md"

  local build = cov:claim(PAGE, "# Embedding in a C host", "sh")
  local threads = cov:claim(PAGE, "## Threads", "sh")
  it("gives the command helgrind and DRD run under, which make embed runs as written", function()
    local host = read("spec/embed/host.lua")
    assert.truthy(host:find('docs.block("doc/embedding.md", "## Threads", "sh")', 1, true))
    local cmds = docs.commands(threads)
    assert.equal(1, #cmds)
    assert.truthy(cmds[1]:find("^valgrind %-%-tool=helgrind %-%-suppressions=embed/threads%.supp "), cmds[1])
    assert(io.open(ROOT .. "/embed/threads.supp", "rb")):close()
  end)
  it("builds with make static and a cc command that names files that exist; make embed runs them", function()
    assert.truthy(read("spec/embed/host.lua")
      :find('docs.block("doc/embedding.md", "# Embedding in a C host", "sh")', 1, true))
    assert.truthy(read("Makefile"):find("\nembed: build/embed/host build/embed/host-tsan\n", 1, true))
    assert.truthy(read("Makefile"):find(" spec/embed/host.lua\n", 1, true))
    local cmds = docs.commands(build)
    assert.equal("make static", cmds[1])
    assert.truthy(read("Makefile"):find("\nstatic: $(STATIC)\n", 1, true))
    local seen = 0
    for file in cmds[2]:gmatch("(%S+%.[ca])%f[%s]") do
      if not file:find("^build/") then
        seen = seen + 1
        assert(io.open(ROOT .. "/" .. file, "rb"),
               "the page compiles " .. file .. ", which does not exist"):close()
      end
    end
    assert.equal(1, seen)
    assert.truthy(cmds[2]:find(" build/libitnio.a ", 1, true))
  end)

  local c = cov:claim(PAGE, "# Embedding in a C host", "c")
  it("shows the lines of examples/embed/host.c (make embed runs it) "
    .. "that put the module in a state", function()
    local host = read("examples/embed/host.c")
    local n = 0
    for line in c:gmatch("[^\n]+") do
      local code = line:gsub("/%*.-%*/", ""):gsub("^%s+", ""):gsub("%s+$", "")
      if code ~= "" then
        n = n + 1
        assert.truthy(host:find("\n%s*" .. code:gsub("%p", "%%%0") .. "%s"), "host.c has no line " .. code)
      end
    end
    assert.equal(3, n)
    assert.truthy(read("csrc/itnio_embed.h"):find("\nvoid itnio_preload(lua_State *L);\n", 1, true))
  end)
end)

describe("doc/testing.md", function()
  local PAGE = "doc/testing.md"

  local example = cov:claim(PAGE, "## The vendor double", "lua")
  it("shows examples/testing/reminders_spec.lua whole, which make test runs", function()
    assert.equal(read("examples/testing/reminders_spec.lua"), example)
    assert.truthy(read("Makefile"):find("spec/ examples/testing/\n", 1, true))
  end)

  local busted = cov:claim(PAGE, "## The vendor double", "sh")
  it_once("runs that spec with the busted command it gives", function()
    local cmds = docs.commands(busted)
    assert.equal(1, #cmds)
    local out, ok = shell.run("cd " .. q(ROOT) .. " && " .. cmds[1])
    assert(ok, out)
    assert.truthy(out:find("4 successes / 0 failures / 0 errors / 0 pending", 1, true), out)
  end)

  local sandbox_block = cov:claim(PAGE, "## The sandbox", "sh")
  it_once("starts the sandbox, reads a task, queues a fault, and stops it, "
    .. "with the commands it gives", function()
    local port, tls_port = sandbox.free_ports()
    local dir = workdir()
    local script = docs.substitute(sandbox_block, {
      { "bin/itnio-sandbox start", "bin/itnio-sandbox start --prefix " .. q(dir .. "/sb")
        .. " --port " .. port
        .. " --tls-port " .. tls_port },
      { "bin/itnio-sandbox status", "bin/itnio-sandbox status --prefix " .. q(dir .. "/sb") },
      { "bin/itnio-sandbox stop", "bin/itnio-sandbox stop --prefix " .. q(dir .. "/sb") },
      { "http://127.0.0.1:18080", "http://127.0.0.1:" .. port },
    })
    local out, ok = sh(dir, script)
    remove(dir)
    assert(ok, out)
    assert.truthy(out:find("^http_url=http://127.0.0.1:" .. port .. "\n"), out)
    for _, key in ipairs{ "https_url", "cafile", "api_key", "prefix" } do
      assert.truthy(out:find("\n" .. key .. "=", 1, true), key .. ":\n" .. out)
    end
    assert.truthy(out:find('"keyId":299', 1, true), out)
    assert.truthy(out:find('{"length":1}', 1, true), out)
    assert.truthy(out:find("\nrunning\n", 1, true), out)
  end)
end)

-- The Performance table is generated (tools/bench-readme, which `make bench` runs) from the
-- committed results of the last make bench (bench/results.tsv): it must be exactly what the
-- generator makes of them, and the hand-written prose around it must not repeat its figures.
describe("doc/performance.md", function()
  local PAGE = "doc/performance.md"
  local BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

  -- The page, the lines strictly between the two markers (nil when a marker is missing), and
  -- the page without them.
  local function page()
    local text = read(PAGE)
    local b = text:find("\n" .. BEGIN .. "\n", 1, true)
    local e = b and text:find("\n" .. END .. "\n", b, true)
    local block = e and text:sub(b + #BEGIN + 2, e)
    return text, block, b and e and text:sub(1, b) .. text:sub(e + #END + 2) or text
  end

  local function generate(results)
    local p = assert(io.popen("lua5.4 " .. q(ROOT .. "/tools/bench-readme") .. " --print "
      .. q(results) .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
  end

  local function rows(path)
    local t = {}
    for line in assert(shell.read(path), path):gmatch("[^\n]+") do
      if line:find("^row\t") then
        local f = {}
        for field in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
        t[#t + 1] = { id = f[2], what = f[3], ours = f[4], peer_value = f[7], ratio = f[8], range = f[9] }
      end
    end
    return t
  end

  local function first_difference(a, b)
    local la, lb = {}, {}
    for l in (a .. "\n"):gmatch("([^\n]*)\n") do la[#la + 1] = l end
    for l in (b .. "\n"):gmatch("([^\n]*)\n") do lb[#lb + 1] = l end
    for i = 1, math.max(#la, #lb) do
      if la[i] ~= lb[i] then
        return ("line %d of the block:\n  page:      %s\n  generated: %s")
          :format(i, la[i] or "(none)", lb[i] or "(none)")
      end
    end
    return "(the same lines)"
  end

  it("holds the block between " .. BEGIN .. " and " .. END .. ", once each, and README does not", function()
    local function count(s, plain)
      local n, at = 0, 1
      while true do
        local _, e = s:find(plain, at, true)
        if not e then return n end
        n, at = n + 1, e + 1
      end
    end
    local text, block = page()
    assert.is_truthy(block, PAGE .. " has no " .. BEGIN .. " ... " .. END .. " block")
    local readme = read("README.md")
    assert.same({ 1, 1, 0, 0 }, { count(text, BEGIN), count(text, END), count(readme, BEGIN),
                                  count(readme, END) })
  end)

  it("has the table tools/bench-readme makes of bench/results.tsv", function()
    local _, block = page()
    assert(block, PAGE .. " has no " .. BEGIN .. " ... " .. END .. " block")
    local want = generate(ROOT .. "/bench/results.tsv")
    assert(want:find("^<!%-%-"), "tools/bench-readme failed: " .. want)
    if block ~= want then
      assert.is_true(false, PAGE .. "'s table is not what tools/bench-readme makes of "
        .. "bench/results.tsv (make bench, or lua5.4 tools/bench-readme bench/results.tsv, rewrites it); "
        .. first_difference(block, want))
    end
  end)

  it("shows every row of the results, in order, and a new row with no change to the generator", function()
    local path = os.tmpname()
    shell.write(path, read("bench/results.tsv")
      .. "row\tnew.floor\tthe transport alone, no validation\t123.4\treq/s"
      .. "\ta C loop\t567.8\t0.22\t0.20..0.25\n")
    local out = generate(path)
    os.remove(path)
    local table_lines = {}
    for l in out:gmatch("[^\n]+") do
      if l:find("^| ") then table_lines[#table_lines + 1] = l end
    end
    local want = rows(ROOT .. "/bench/results.tsv")
    assert.equal(#want + 2, #table_lines, out)   -- the header, the committed rows and the new one
    for i, r in ipairs(want) do
      local start = "| " .. r.what:gsub("|", "\\|") .. " | " .. r.ours
      assert(table_lines[i + 1]:find(start, 1, true) == 1, ("row %s: %s"):format(r.id, table_lines[i + 1]))
    end
    assert.equal("| the transport alone, no validation | 123.4 req/s | a C loop: 567.8 req/s "
        .. "| 0.22 (0.20..0.25) |",
      table_lines[#table_lines])
  end)

  it("cites none of the table's figures outside it (they would drift)", function()
    local _, block, prose = page()
    assert(block, PAGE .. " has no generated block")
    for _, r in ipairs(rows(ROOT .. "/bench/results.tsv")) do
      for _, v in ipairs({ r.ours, r.peer_value, r.ratio, (r.range:match("^(.-)%.%.")),
                           (r.range:match("%.%.(.*)$")) }) do
        -- Figures only: small integers ("1 worker", "Debian 12") are not the table's.
        if v and (v:find("%.") or #v >= 3) then
          local at = prose:find("%f[%w.]" .. v:gsub("%p", "%%%0") .. "%f[^%w.]")
          assert(not at,
                 ("the prose of %s cites %s (row %s): refer to the table instead"):format(PAGE, v, r.id))
        end
      end
    end
  end)
end)

describe("doc/store.md", function()
  local PAGE = "doc/store.md"

  local option = cov:claim(PAGE, "## The option", "lua")
  local running = cov:claim(PAGE, "## Running Redis for it", "sh")
  it_once("starts Redis as its commands say, and its client updates a task with the state there", function()
    local sb = sandbox.start{}
    local port = sandbox.free_ports()
    local pidfile = os.tmpname()
    local script = docs.substitute(running, {
      { "6380", tostring(port) }, { "/tmp/itnio-redis.pid", pidfile },
      { 'kill "$(cat ' .. pidfile .. ')"', 'echo "ITNIO_STORE=$ITNIO_STORE"' },
    })
    local ok, err = pcall(function()
      local out, good = sh(ROOT, script)
      assert(good, out)
      assert.truthy(out:find("PONG", 1, true), out)
      local url = assert(out:match("ITNIO_STORE=(%S+)"), out)
      local said, print = printer()
      local env = setmetatable({ print = print, os = setmetatable({ getenv = function(name)
        return ({ ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret,
                  ITNIO_BASE_URL = sb.http_url, ITNIO_STORE = url })[name]
      end }, { __index = os }) }, { __index = _G })
      docs.chunk(option, PAGE, env)()
      assert.same({ "updated, 1 attempt(s)" }, said)
      local keys = shell.run("redis-cli -p " .. port .. " --no-auth-warning -a change-me KEYS '*'")
      assert.truthy(keys:find("itnio:{%x+}:rate"), keys)
    end)
    shell.run("kill \"$(cat " .. q(pidfile) .. ")\" 2>/dev/null; rm -f " .. q(pidfile))
    sb:stop()
    assert(ok, err)
  end)

  it("names every key the store keeps, as store.lua makes them", function()
    local src = read("lua/itnio/internal/store.lua")
    local made = assert(src:match("keys = (%b{})"), "store.lua makes no keys table")
    local page = docs.section(PAGE, "## What lives in Redis")
    for name in made:gmatch('base %.%. "(%w+)"') do
      assert.truthy(page:find("`" .. name .. "`", 1, true), "the page does not name the key " .. name)
    end
  end)
end)

describe("the blocks of doc/", function()
  it("are each run or checked above, and fenced (an indented block would be missed)", function()
    local pages = {}
    for _, page in ipairs(docs.pages()) do
      if page ~= "README.md" and page ~= "doc/architecture.md" then pages[#pages + 1] = page end
    end
    assert.same({}, cov:unclaimed(pages))
    for _, page in ipairs(pages) do assert.same({}, docs.indented(page)) end
  end)
end)
