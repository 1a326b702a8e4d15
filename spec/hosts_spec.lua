-- The client's jobs in hosts' own event loops, through client:pollfd(), events() and
-- timeout(): examples/luv.lua (lua5.4 and luv), examples/cqueues.lua (lua5.4 and cqueues)
-- and examples/neovim.lua (headless Neovim, vim.loop, the LuaJIT core), each run as a user
-- would, against the sandbox: updates that overlap, a deadline on a server that never
-- answers, a Retry-After timer; and, while they wait, the process's CPU time a small part of
-- the time it took (they sleep, they do not spin). Tests tagged #timing assert generous bounds
-- on elapsed time. The protocol itself, in one process: spec/jobs_spec.lua.
local socket  = require "socket"
local sandbox = require "support.sandbox"

local q, ROOT = sandbox.shell_quote, sandbox.root

local HOSTS = {
  { name = "luv", example = "examples/luv.lua", core = "lua5.4",
    command = function(paths) return "lua5.4 -e " .. q(paths) .. " examples/luv.lua" end },
  { name = "cqueues", example = "examples/cqueues.lua", core = "lua5.4",
    command = function(paths) return "lua5.4 -e " .. q(paths) .. " examples/cqueues.lua" end },
  { name = "Neovim", example = "examples/neovim.lua", core = "luajit",
    command = function()
      return "nvim --headless -u NONE"
        .. " --cmd " .. q('lua package.path = "lua/?.lua;lua/?/init.lua;" .. package.path')
        .. " --cmd " .. q('lua package.cpath = "build/luajit/?.so;" .. package.cpath')
        .. " -c " .. q("luafile examples/neovim.lua") .. " < /dev/null"
    end },
}

-- Runs a host's example with env: its output, exit status, and its summary's numbers.
local function run(host, env)
  local parts = { "cd " .. q(ROOT) .. " && env -u LUA_PATH -u LUA_CPATH" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  local paths = 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path; package.cpath = "build/'
    .. host.core .. '/?.so;" .. package.cpath'
  local out = sandbox.run(table.concat(parts, " ") .. " timeout 60 " .. host.command(paths)
    .. "; echo \"exit=$?\"")
  local text, status = out:match("^(.*)exit=(%d+)%s*$")
  local ok_n, n, wall, cpu = (text or "")
    :match("(%d+) of (%d+) updates succeeded in ([%d.]+) s, ([%d.]+) s of CPU")
  return { out = text or out, status = tonumber(status), ok = tonumber(ok_n), n = tonumber(n),
           wall = tonumber(wall), cpu = tonumber(cpu) }
end

-- The seconds each update took, as its line said (update i: ... T s).
local function took(out)
  local t = {}
  for i, s in out:gmatch("update (%d+): [^\n]-([%d.]+) s") do t[tonumber(i)] = tonumber(s) end
  return t
end

for _, host in ipairs(HOSTS) do
  describe(host.example .. " (" .. host.name .. ")", function()
    local sb, held
    setup(function()
      sb = sandbox.start{}
      held = sandbox.start{ hold_ms = 400 }
      assert(select(2, sandbox.run("cd " .. q(ROOT) .. " && make -s LUA=" .. host.core .. " build")))
    end)
    teardown(function()
      if sb then sb:stop() end
      if held then held:stop() end
    end)
    local function env(s, extra)
      local e = { ITNIO_BASE_URL = s.http_url, ITNIO_API_KEY = s.api_key, ITNIO_API_SECRET = s.api_secret }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    it("overlaps its updates: 5 answers held 400 ms each end together #timing", function()
      held:reset()
      local r = run(host, env(held, { ITNIO_UPDATES = "5" }))
      assert.equal(0, r.status, r.out)
      assert.equal(5, r.ok, r.out)
      assert.is_true(r.wall < 5 * 0.4 * 0.6, "one after another would take 2 s: " .. r.out)
      for _, s in pairs(took(r.out)) do assert.is_true(s >= 0.4 * 0.95, r.out) end
      assert.equal(5, held:stats().accepted)
    end)

    it("waits out a Retry-After asleep, then updates #timing", function()
      sb:reset()
      sb:fault{ kind = "status", status = 503, retry_after = 1, count = 1 }
      local r = run(host, env(sb, { ITNIO_UPDATES = "1" }))
      assert.equal(0, r.status, r.out)
      assert.truthy(r.out:find("update 1: ok after 2 attempt(s)", 1, true), r.out)
      local s = took(r.out)[1]
      assert.is_true(s >= 1 and s <= 1.2 + 0.2, "Retry-After: 1 took " .. tostring(s) .. " s")
      assert.is_true(r.cpu < 0.1 * r.wall + 0.05,
                     ("%.3f s of CPU in %.2f s of waiting"):format(r.cpu, r.wall))
    end)

    it("ends an update at its deadline on a server that never answers, asleep meanwhile #timing", function()
      local silent = assert(socket.bind("127.0.0.1", 0))   -- listens, never accepts, never answers
      local _, port = silent:getsockname()
      local r = run(host, { ITNIO_BASE_URL = "http://127.0.0.1:" .. port, ITNIO_API_KEY = "k",
                            ITNIO_API_SECRET = "s", ITNIO_UPDATES = "2", ITNIO_DEADLINE = "1" })
      silent:close()
      assert.equal(1, r.status, r.out)
      assert.equal(0, r.ok, r.out)
      for i = 1, 2 do
        assert.truthy(r.out:find("update " .. i .. ": failed (deadline)", 1, true), r.out)
        local s = took(r.out)[i]
        assert.is_true(s >= 1 and s <= 1.2, "a deadline of 1 s ended after " .. tostring(s) .. " s")
      end
      assert.is_true(r.cpu < 0.1 * r.wall + 0.05,
                     ("%.3f s of CPU in %.2f s of waiting"):format(r.cpu, r.wall))
    end)
  end)
end
