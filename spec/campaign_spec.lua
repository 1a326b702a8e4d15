-- Campaigns: `itnio recall-update --batch FILE` against the sandbox, under Lua 5.4 and 5.1
-- (bin/itnio run by each; the runner's own Lua does not matter here). What a person would
-- do: mixed files, a rate, kill -9 and a resume, Ctrl-C in a real terminal (tmux), a
-- progress line drawn there and absent in a pipe, a file of a million lines. The sandbox's
-- own counters (/sandbox/tasks?from&to) say what arrived, and how often.
-- Tests tagged #timing assert generous bounds on elapsed time. The two long ones (a 5 s run
-- at a rate, a million lines) run under the first Lua only: what they measure is the same
-- Lua code under both, and their twin under 5.1 would add 12 s to every run of the suite.
local cjson   = require "cjson"
local sandbox = require "support.sandbox"
local shell   = require "support.shell"
local core    = require "itnio.core"

local q, ROOT = shell.quote, shell.root
local BIN = ROOT .. "/bin/itnio"

local read, write = shell.read, shell.write

local function lines(text)
  local t = {}
  for l in (text or ""):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local function decode_all(text)
  local t = {}
  for i, l in ipairs(lines(text)) do t[i] = cjson.decode(l) end
  return t
end

local function task_line(id, text)
  return ('{"keyId":%d,"recallType":0,"recallInterval":30,"recallNum":1,"nodeList":[{"source":3,'
    .. '"text":%s,"lan":"en-US","hangUpSms":0,"toSeat":0}]}'):format(id, cjson.encode(text or "Campaign"))
end

-- A file of n tasks, keyIds from .. from + n - 1, each seeded Pending in the sandbox.
local function seeded_file(sb, path, from, n)
  sb:seed(from, from + n - 1)
  local text = {}
  for i = 1, n do text[i] = task_line(from + i - 1) end
  write(path, table.concat(text, "\n") .. "\n")
  return path
end

-- A fresh directory for a test's files.
local function tmpdir()
  local d = shell.tmpdir()
  return d
end

local function sleep(s) core.sleep(s) end

for i_lua, LUA in ipairs{ "lua5.4", "lua5.1" } do
local it_once = i_lua == 1 and it or function() end
describe("itnio --batch under " .. LUA, function()
  local sb, env, dir

  -- The command line (a shell string) that runs itnio with the sandbox's account.
  local function command(args, extra_env)
    local parts = { "env -u ITNIO_API_KEY -u ITNIO_API_SECRET -u ITNIO_BASE_URL -u ITNIO_CAFILE" }
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
    for k, v in pairs(extra_env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
    parts[#parts + 1] = LUA .. " " .. q(BIN) .. " recall-update"
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    return table.concat(parts, " ")
  end

  -- Runs itnio to the end: stdout, stderr, exit status.
  local function itnio(args, stdin)
    local out, err = dir .. "/stdout", dir .. "/stderr"
    local cmd = command(args) .. " > " .. q(out) .. " 2> " .. q(err)
      .. (stdin and (" < " .. q(stdin)) or " < /dev/null") .. "; echo \"exit=$?\""
    local text = shell.run(cmd)
    local status = tonumber(text:match("exit=(%d+)"))
    return read(out), read(err), status
  end

  -- Starts itnio in the background: its pid; its exit status lands in dir/status.
  local function spawn(args, stdout, stderr)
    local pidfile = dir .. "/pid"
    shell.run("(" .. command(args) .. " > " .. q(stdout) .. " 2> " .. q(stderr) .. " < /dev/null & echo $! > "
      .. q(pidfile) .. "; wait $!; echo $? > " .. q(dir .. "/status")
      .. ") > /dev/null 2>&1 &")
    local t0 = core.now()
    while not (read(pidfile) or ""):find("%d") and core.now() - t0 < 5 do sleep(0.01) end
    return assert(tonumber(read(pidfile):match("%d+")))
  end

  local function alive(pid)
    local _, ok = shell.run("kill -0 " .. pid)
    return ok
  end

  local function wait_gone(pid, limit)
    local t0 = core.now()
    while alive(pid) do
      if core.now() - t0 > limit then return false end
      sleep(0.02)
    end
    return true
  end

  setup(function()
    sb = sandbox.start{}
    env = { ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.http_url }
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    dir = tmpdir()
  end)
  after_each(function() shell.run("rm -rf " .. q(dir)) end)

  -- The output never holds the secret.
  local function no_secret(...)
    for i = 1, select("#", ...) do
      local s = select(i, ...)
      if s then assert.is_nil(s:find(sb.api_secret, 1, true), "the secret is in the output") end
    end
  end

  it("runs 2000 lines with broken and non-JSON lines mixed in: one result a line, each task once", function()
    local FROM = 100001
    sb:seed(FROM, FROM + 1999)
    local text, want = {}, {}
    for n = 1, 2000 do
      local id = FROM + n - 1
      if n % 97 == 0 then text[n], want[n] = "", nil                     -- blank: skipped
      elseif n % 53 == 0 then text[n], want[n] = "not json {", "InputError"
      elseif n % 61 == 0 then text[n], want[n] = "[1,2,3]", "InputError"
      elseif n % 37 == 0 then text[n], want[n] = ('{"keyId":%d,"recallType":7}'):format(id), "ValidationError"
      else text[n], want[n] = task_line(id), true end
    end
    local file = dir .. "/tasks.jsonl"
    write(file, table.concat(text, "\n") .. "\n")
    local out, err, status = itnio({ "--batch", file, "--concurrency", "16" })
    assert.equal(3, status, err)
    local results, seen, valid = decode_all(out), {}, 0
    for _, r in ipairs(results) do
      assert.is_nil(seen[r.line], "line " .. r.line .. " twice")
      seen[r.line] = r
    end
    for n = 1, 2000 do
      local r, w = seen[n], want[n]
      if w == nil then
        assert.is_nil(r, "a blank line has a result")
      elseif w == true then
        valid = valid + 1
        assert.are.same({ line = n, keyId = FROM + n - 1, ok = true, attempts = 1 }, r)
      else
        assert.is_false(r.ok)
        assert.equal(w, r.kind, "line " .. n)
        assert.equal(0, r.attempts)
        assert.is_false(r.retryable)
        if w == "ValidationError" then
          assert.equal(FROM + n - 1, r.keyId)
          assert.equal("T2", r.errors[1].rule)
        else
          assert.equal(cjson.null, r.keyId)
        end
      end
    end
    local u = sb:updates(FROM, FROM + 1999)
    assert.equal(valid, u.updates["1"])
    assert.equal(2000 - valid, u.updates["0"])
    assert.is_nil(u.updates["2"])
    assert.matches("ended: " .. valid .. " updated, 0 refused by the API, " .. (#results - valid)
      .. " broken", err)
    -- the journal has every line that ended; run again: nothing is sent, the same results
    local journal = lines(read(file .. ".journal"))
    assert.equal(#results + 1, #journal)
    local requests = sb:stats().requests
    local out2, err2, status2 = itnio({ "--batch", file })
    assert.equal(3, status2, err2)
    assert.equal(requests, sb:stats().requests)
    local again = decode_all(out2)
    assert.equal(#results, #again)
    for _, r in ipairs(again) do assert.are.same(seen[r.line], r) end
    assert.matches(#results .. " of them from the journal", err2)
    no_secret(out, err, out2, err2)
  end)

  it_once("holds --rate within 10% over a 5 s run, retries included #timing", function()
    local FROM, N, RATE = 200001, 101, 20
    sb:seed(FROM, FROM + N - 1)
    sb:fault{ kind = "status", status = 503, count = 10 }   -- 10 retries, paced like the rest
    local text = {}
    for n = 1, N - 10 do text[n] = task_line(FROM + n - 1) end
    local file = dir .. "/rate.jsonl"
    write(file, table.concat(text, "\n") .. "\n")
    local t0 = core.now()
    local out, err, status = itnio({ "--batch", file, "--rate", tostring(RATE), "--concurrency", "8" },
                                   nil)
    local took = core.now() - t0
    assert.equal(0, status, err .. out)
    assert.equal(N, sb:stats().requests)   -- 91 lines and 10 retries: 101 requests
    -- the first request leaves at once, the 101st 100 slots later: 5 s at 20 a second
    local ideal = (N - 1) / RATE
    assert.is_true(took >= ideal * 0.9 and took <= ideal * 1.1 + 0.5,
                   ("%d requests at %d a second took %.2f s (ideal %.2f)"):format(N, RATE, took, ideal))
    local first, last = math.huge, 0
    for n = 1, N - 10 do
      local at = sb:task(FROM + n - 1).updated_at
      first, last = math.min(first, at), math.max(last, at)
    end
    assert.is_true(last - first >= ideal * 0.9 * (N - 11) / (N - 1), "span " .. (last - first))
  end)

  it("resumes after kill -9: each line arrives, at most --concurrency of them twice", function()
    local FROM, N, C = 300001, 400, 8
    sb:seed(FROM, FROM + N - 1)
    local text = {}
    for n = 1, N do text[n] = task_line(FROM + n - 1) end
    local file = dir .. "/kill.jsonl"
    write(file, table.concat(text, "\n") .. "\n")
    local pid = spawn({ "--batch", file, "--rate", "200", "--concurrency", tostring(C) },
                      dir .. "/out1", dir .. "/err1")
    local t0 = core.now()
    repeat sleep(0.05) until #lines(read(file .. ".journal")) > 60 or core.now() - t0 > 10
    assert(shell.run("kill -9 " .. pid))
    assert.is_true(wait_gone(pid, 5))
    local recorded = #lines(read(file .. ".journal")) - 1
    assert.is_true(recorded > 0 and recorded < N, "recorded " .. recorded)
    local out, err, status = itnio({ "--batch", file, "--concurrency", tostring(C) })
    assert.equal(0, status, err)
    assert.equal(N, #lines(out))
    local u = sb:updates(FROM, FROM + N - 1)
    assert.is_nil(u.updates["0"], "a line never arrived: " .. cjson.encode(u.never))
    local twice = u.updates["2"] or 0
    assert.is_true(twice <= C, twice .. " lines arrived twice")
    assert.is_nil(u.updates["3"])
    assert.equal(N + twice, sb:stats().accepted)
  end)

  it("refuses a journal made for another input, and sends nothing", function()
    local a, b = dir .. "/a.jsonl", dir .. "/b.jsonl"
    write(a, task_line(299) .. "\n")
    write(b, task_line(301) .. "\n" .. task_line(299) .. "\n")
    local _, err, status = itnio({ "--batch", a, "--journal", dir .. "/j" })
    assert.equal(0, status, err)
    local _, err2, status2 = itnio({ "--batch", b, "--journal", dir .. "/j" })
    assert.equal(2, status2)
    assert.matches("made for another input", err2)
    assert.equal(1, sb:stats().requests)
  end)

  it("keeps the journal's records whole when the last one was cut short", function()
    local file = dir .. "/cut.jsonl"
    write(file, task_line(299) .. "\n" .. task_line(301) .. "\n")
    assert.equal(0, select(3, itnio({ "--batch", file })))
    local j = read(file .. ".journal")
    -- the second record cut in the middle, as a kill -9 during a write would leave it
    local keep = j:sub(1, #j - 20)
    write(file .. ".journal", keep)
    local out, err, status = itnio({ "--batch", file })
    assert.equal(0, status, err)
    assert.equal(2, #lines(out))
    assert.equal(3, sb:stats().requests)   -- the line whose record was cut, once more
    for _, l in ipairs(lines(read(file .. ".journal"))) do
      if l:find("^{\"line\"") then assert.truthy(cjson.decode(l), l) end
    end
  end)

  it("exits 4 when a line is worth retrying (the run's deadline), "
    .. "and sends it again on the next run", function()
    sb:fault{ kind = "delay", ms = 3000, count = 1 }
    local file = dir .. "/late.jsonl"
    write(file, task_line(301) .. "\n" .. task_line(299) .. "\n")
    local out, err, status = itnio({ "--batch", file, "--deadline", "0.5", "--concurrency", "1" })
    assert.equal(4, status, err)
    local r = decode_all(out)
    assert.equal("TransportError", r[1].kind)
    assert.equal("deadline", r[1].reason)
    assert.is_true(r[1].retryable)
    assert.equal("deadline", r[2].reason)   -- never started: the run's time was up
    assert.equal(0, r[2].attempts)
    assert.matches("run again with the same journal", err)
    local _, err2, status2 = itnio({ "--batch", file })
    assert.equal(0, status2, err2)
    assert.equal(1, sb:task(299).updates)
  end)

  it("pauses while its breaker is open and sends the lines it held back once it closes #timing", function()
    local FROM = 600001
    sb:seed(FROM, FROM + 4)
    sb:fault{ kind = "status", status = 503, count = 3 }
    local text = {}
    for i = 1, 5 do text[i] = task_line(FROM + i - 1) end
    local file = dir .. "/breaker.jsonl"
    write(file, table.concat(text, "\n") .. "\n")
    local out, err, status = itnio({ "--batch", file, "--breaker=3,0.5", "--concurrency", "1" })
    assert.equal(4, status, err)   -- line 1 ran out of retries on the 503s: worth retrying
    local by = {}
    for _, r in ipairs(decode_all(out)) do by[r.line] = r end
    assert.equal("HttpError", by[1].kind)
    for i = 2, 5 do assert.is_true(by[i].ok, "line " .. i .. ": " .. tostring(by[i].kind)) end
    assert.equal(7, sb:stats().requests)   -- 3 for line 1, then the trial and the rest
    local u = sb:updates(FROM, FROM + 4)
    assert.equal(4, u.updates["1"])
  end)

  it("exits 1 when the API refused a line, whatever else broke", function()
    local file = dir .. "/refused.jsonl"
    write(file, task_line(300) .. "\nnot json\n" .. task_line(299) .. "\n")
    local out, err, status = itnio({ "--batch", file })
    assert.equal(1, status, err)
    local r = decode_all(out)
    local by = {}
    for _, x in ipairs(r) do by[x.line] = x end
    assert.equal("ParameterError", by[1].kind)
    assert.equal(-22, by[1].code)
    assert.equal(200, by[1].http_status)
    assert.is_true(by[3].ok)
  end)

  it("reads standard input, with no journal unless one is named; --results takes the results", function()
    local file = dir .. "/in.jsonl"
    write(file, task_line(299) .. "\n\n" .. task_line(301) .. "\n")
    local out, err, status = itnio({ "--batch", "-", "--results", dir .. "/results" }, file)
    assert.equal(0, status, err)
    assert.equal("", out)
    local r = decode_all(read(dir .. "/results"))
    assert.equal(2, #r)
    local got = {}
    for _, x in ipairs(r) do got[x.line] = x.keyId end
    assert.are.same({ [1] = 299, [3] = 301 }, got)
    assert.is_nil(read(file .. ".journal"))
    assert.is_nil(read("-.journal"))
  end)

  it("checks every line in a dry run and sends nothing", function()
    local file = dir .. "/dry.jsonl"
    write(file, task_line(299) .. '\n{"keyId":1,"recallType":9}\n')
    local out, err, status = itnio({ "--batch", file, "--dry-run" })
    assert.equal(3, status, err)
    local r = decode_all(out)
    local by = {}
    for _, x in ipairs(r) do by[x.line] = x end
    assert.are.same({ line = 1, keyId = 299, ok = true, attempts = 0 }, by[1])
    assert.equal("ValidationError", by[2].kind)
    assert.equal(0, sb:stats().requests)
    assert.is_nil(read(file .. ".journal"))
  end)

  it("keeps the secret out of results, journal and summary when the API echoes it", function()
    sb:fault{ kind = "answer", status = 200,
              body = '{"code":-1,"msg":"bad key for ' .. sb.api_secret .. '"}' }
    local file = dir .. "/echo.jsonl"
    write(file, task_line(299) .. "\n")
    local out, err, status = itnio({ "--batch", file })
    assert.equal(1, status)
    assert.equal("AuthError", decode_all(out)[1].kind)
    no_secret(out, err, read(file .. ".journal"))
  end)

  it("refuses bad options with status 2", function()
    local file = dir .. "/x.jsonl"
    write(file, task_line(299) .. "\n")
    for _, args in ipairs{
      { "--batch", file, "--rate", "0" }, { "--batch", file, "--rate", "fast" },
      { "--batch", file, "--concurrency", "0" }, { "--batch", file, "--concurrency", "2.5" },
      { "--batch", file, "--deadline", "-1" }, { "--batch" }, { "--batch", file, "extra.json" },
      { "--batch", file, "--journal", file }, { "--batch", dir .. "/missing" },
      { "--batch", file, "--breaker=0,1" }, { "--batch", file, "--breaker=5" }, { file, "--breaker" },
      { "--batch", dir }, { file, "--rate", "5" }, { "--batch", file, "--progress", "--no-progress" },
      { "--batch", file, "--results", file }, { "--batch", file, "--results", file .. ".journal" },
    } do
      local _, err, status = itnio(args)
      assert.equal(2, status, table.concat(args, " ") .. ": " .. tostring(err))
      assert.matches("itnio: ", err)
    end
    assert.equal(task_line(299) .. "\n", read(file))   -- (no option wrote over the input)
    assert.equal(0, sb:stats().requests)
  end)

  describe("stops on a signal", function()
    local function slow_file(n) return seeded_file(sb, dir .. "/slow.jsonl", 400001, n) end

    it("SIGTERM: the lines in flight end and are recorded; the summary; exit 143 #timing", function()
      sb:fault{ kind = "delay", ms = 600, count = 1000 }
      local file = slow_file(50)
      local pid = spawn({ "--batch", file, "--concurrency", "4" }, dir .. "/out", dir .. "/err")
      local t = core.now()
      while sb:stats().requests < 4 and core.now() - t < 10 do sleep(0.02) end
      local t0 = core.now()
      assert(shell.run("kill -TERM " .. pid))
      assert.is_true(wait_gone(pid, 5))
      local took = core.now() - t0
      assert.is_true(took > 0.1 and took < 2, "took " .. took)
      local out, err = read(dir .. "/out"), read(dir .. "/err")
      local t1 = core.now()
      while not read(dir .. "/status") and core.now() - t1 < 2 do sleep(0.01) end
      assert.equal(143, tonumber(read(dir .. "/status")))
      assert.matches("stopped by SIGTERM", err)
      local recorded = #lines(read(file .. ".journal")) - 1
      assert.equal(4, recorded)
      assert.equal(4, #lines(out))
      assert.equal(4, sb:stats().requests)
    end)
  end)
end)
end

-- Ctrl-C, progress, and the memory of a million lines: in a real terminal (tmux) where it
-- matters, once per Lua.
for i_lua, LUA in ipairs{ "lua5.4", "lua5.1" } do
local it_once = i_lua == 1 and it or function() end
describe("itnio --batch in a terminal, under " .. LUA, function()
  local sb, dir, sock
  local function tmux(args) return shell.run("tmux -L " .. sock .. " -f /dev/null " .. args) end
  -- What the window shows, its history too (tmux scrolls a line away when the program ends).
  local function pane() return (tmux("capture-pane -p -S - -t t")) end
  -- Waits until the sandbox has seen n requests (the program runs, its signals caught).
  local function requests(n)
    local t0 = core.now()
    while sb:stats().requests < n and core.now() - t0 < 10 do sleep(0.02) end
  end

  setup(function()
    sb = sandbox.start{}
    sock = "itnio-spec-" .. tostring(os.time()) .. tostring(math.random(1e6))
  end)
  teardown(function()
    tmux("kill-server")
    if sb then sb:stop() end
  end)
  before_each(function()
    sb:reset()
    dir = tmpdir()
  end)
  after_each(function()
    tmux("kill-session -t t")
    shell.run("rm -rf " .. q(dir))
  end)

  -- Runs itnio in a fresh tmux window (100 columns), as a person at a terminal would; its
  -- results go to dir/out. Between tmux and it, only a small perl parent (Debian's perl-base
  -- is always there) that ignores SIGINT itself, waits for it, and writes its exit status to
  -- dir/status (128 + the signal when a signal ended it): a shell there would take the
  -- Ctrl-C for itself. The window stays when it ends, so that it can be read.
  local WAITER = 'my $p = fork; die "fork" unless defined $p;'
    .. ' if (!$p) { $SIG{INT} = "DEFAULT"; exec @ARGV[1..$#ARGV]; exit 127 }'
    .. ' $SIG{INT} = "IGNORE"; waitpid($p, 0); my $s = ($? & 127) ? 128 + ($? & 127) : $? >> 8;'
    .. ' open(my $f, ">", $ARGV[0]) or die; print $f "$s\\n"; close $f'
  local function start(args)
    local parts = { "perl", "-e", q(WAITER), q(dir .. "/status"), "env", "ITNIO_API_KEY=" .. q(sb.api_key),
                    "ITNIO_API_SECRET=" .. q(sb.api_secret), "ITNIO_BASE_URL=" .. q(sb.http_url), LUA, q(BIN),
                    "recall-update" }
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    parts[#parts + 1] = "--results"
    parts[#parts + 1] = q(dir .. "/out")
    local _, ok = tmux("new-session -d -s t -x 100 -y 20 " .. table.concat(parts, " ")
      .. " \\; set-option -t t remain-on-exit on")
    assert(ok, "tmux did not start")
  end
  -- The exit status once the program has ended (nil past limit seconds), and the time it took.
  local function status(limit)
    local t0 = core.now()
    while core.now() - t0 < limit do
      local s = read(dir .. "/status")
      if s and s:find("\n") then return tonumber(s:match("%d+")), core.now() - t0 end
      sleep(0.02)
    end
    return nil, limit
  end
  local function file_of(n, from) return seeded_file(sb, dir .. "/t.jsonl", from, n) end

  it("draws a progress line in a terminal, then the summary #timing", function()
    local file = file_of(40, 500001)
    start{ "--batch", file, "--rate", "20" }
    sleep(1.2)
    local during = pane()
    assert.matches("itnio: %d+/40 lines %(%d+%%%), %d+ updated, 0 failed, [%d.]+ req/s, %d+s left", during)
    local st = status(10)
    assert.equal(0, st)
    local after = pane()
    assert.matches("40 line%(s%) ended: 40 updated", after)
    assert.is_nil(after:find("req/s, ", 1, true), "the progress line was left on the screen")
  end)

  it("draws nothing but the summary when standard error is not a terminal", function()
    local file = file_of(30, 510001)
    local cmd = ("env ITNIO_API_KEY=%s ITNIO_API_SECRET=%s ITNIO_BASE_URL=%s %s %s recall-update"
                 .. " --batch %s --rate 60 > %s 2> %s")
      :format(q(sb.api_key), q(sb.api_secret), q(sb.http_url), LUA, q(BIN), q(file),
              q(dir .. "/out"), q(dir .. "/err"))
    assert(select(2, shell.run(cmd)))
    local err = read(dir .. "/err")
    assert.is_nil(err:find("\r", 1, true))
    assert.is_nil(err:find("req/s", 1, true))
    assert.matches("30 line%(s%) ended: 30 updated", err)
    -- and --progress forces it
    sb:reset()
    sb:seed(510001, 510030)
    assert(select(2, shell.run(cmd:gsub("%-%-rate 60",
                                        "--rate 60 --progress --journal " .. q(dir .. "/j2")))))
    assert.truthy(read(dir .. "/err"):find("\r", 1, true))
  end)

  it("Ctrl-C once: the lines in flight end and are recorded, the summary, exit 130 #timing", function()
    sb:fault{ kind = "delay", ms = 800, count = 1000 }
    local file = file_of(40, 520001)
    start{ "--batch", file, "--concurrency", "4" }
    requests(4)
    tmux("send-keys -t t C-c")
    local st, took = status(5)
    assert.equal(130, st, pane())
    assert.is_true(took > 0.1 and took < 2.5, "took " .. took)
    assert.matches("stopped by SIGINT", pane())
    local recorded = #lines(read(file .. ".journal")) - 1
    assert.equal(4, recorded)
    assert.equal(4, #lines(read(dir .. "/out")))
  end)

  it("Ctrl-C twice: exits at once, the journal whole #timing", function()
    sb:fault{ kind = "delay", ms = 3000, count = 1000 }
    local file = file_of(40, 530001)
    start{ "--batch", file, "--concurrency", "4" }
    requests(4)
    tmux("send-keys -t t C-c")
    sleep(0.2)
    local t0 = core.now()
    tmux("send-keys -t t C-c")
    local st = status(5)
    local took = core.now() - t0
    assert.equal(130, st, pane())
    assert.is_true(took < 1, "took " .. took)
    local j = lines(read(file .. ".journal"))
    assert.truthy(cjson.decode(j[1]).itnio_journal)
    for i = 2, #j do assert.truthy(cjson.decode(j[i]), j[i]) end
  end)

  it_once("runs a file of 1,000,000 lines in bounded memory", function()
    -- a million small lines (each not a task, every 100th a task that breaks a rule: each
    -- a result, no request), next to 20,000 of the same: the peak memory (GNU time's maximum
    -- RSS) must not grow with the file
    local block = ("[1]\n"):rep(99) .. '{"keyId":1,"recallType":9}\n'
    local big, small = dir .. "/big.jsonl", dir .. "/small.jsonl"
    local f = assert(io.open(big, "wb"))
    block = block:rep(100)
    for _ = 1, 100 do f:write(block) end
    f:close()
    write(small, block:rep(2))
    local function peak(file)
      local cmd = ("/usr/bin/time -f 'maxrss=%%M' env ITNIO_API_KEY=k ITNIO_API_SECRET=s %s %s recall-update "
        .. "--batch %s --dry-run > /dev/null 2> %s"):format(LUA, q(BIN), q(file), q(dir .. "/time"))
      shell.run(cmd)
      local t = read(dir .. "/time")
      return assert(tonumber(t:match("maxrss=(%d+)")), t), t
    end
    local small_kb = peak(small)
    local big_kb, t = peak(big)
    assert.matches("1000000 line%(s%) checked", t)
    assert.is_true(big_kb < small_kb + 8 * 1024,
                   ("peak %d KB for a million lines, %d KB for 20,000"):format(big_kb, small_kb))
  end)
end)
end
