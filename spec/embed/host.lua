-- examples/embed/host.c linked with build/libitnio.a, against the sandbox: `make embed` builds
-- the host (and a ThreadSanitizer build of it) and runs this file. Its name does not end in
-- _spec, so `make test` and the other runs of spec/ leave it out (they build no host).
local sandbox = require "support.sandbox"
local docs = require "support.docs"
local q = sandbox.shell_quote

local HOST = sandbox.root .. "/build/embed/host"
local HOST_TSAN = sandbox.root .. "/build/embed/host-tsan"
local NOWHERE = "LUA_PATH=/nonexistent/?.lua LUA_PATH_5_4=/nonexistent/?.lua"

describe("a C host with build/libitnio.a", function()
  local sb, dir

  -- Runs a host binary from a directory with no lua/ tree and LUA_PATH pointing nowhere, so
  -- no itnio file on disk can be found; returns its output (stdout and stderr) and exit status.
  local function host(binary, env, ...)
    local parts = { "cd " .. q(dir) .. " && env " .. NOWHERE,
      "TSAN_OPTIONS=exitcode=66:halt_on_error=0:second_deadlock_stack=1" }
    local all = { ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret,
      ITNIO_BASE_URL = sb.https_url, ITNIO_CAFILE = sb.cafile }
    for k, v in pairs(env or {}) do all[k] = v end
    for k, v in pairs(all) do parts[#parts + 1] = k .. "=" .. q(v) end
    parts[#parts + 1] = q(binary)
    for i = 1, select("#", ...) do parts[#parts + 1] = q((select(i, ...))) end
    local out = sandbox.run(table.concat(parts, " ") .. "; echo \"exit=$?\"")
    local text, status = out:match("^(.*)exit=(%d+)%s*$")
    return text, tonumber(status)
  end

  setup(function()
    for _, f in ipairs { HOST, HOST_TSAN } do
      assert(io.open(f, "rb"), f .. " is missing: run `make embed`"):close()
    end
    sb = sandbox.start{}
    local out, ok = sandbox.run("mktemp -d")
    assert(ok, out)
    dir = out:gsub("%s+$", "")
  end)
  teardown(function()
    if sb then sb:stop() end
    if dir then sandbox.run("rm -rf -- " .. q(dir)) end
  end)
  before_each(function() sb:reset() end)

  it("updates a task over HTTPS with no Lua file on disk", function()
    local where, found = sandbox.run("cd " .. q(dir) .. " && env " .. NOWHERE
      .. " lua5.4 -e 'require \"itnio\"'")
    assert.is_false(found, where)   -- a plain lua5.4 there finds no itnio
    local out, status = host(HOST)
    assert.equal(0, status, out)
    assert.equal("updated: code 0 (success) after 1 attempt(s), HTTP 200\n", out)
    assert.equal(1, sb:stats().accepted)
    assert.equal("call-1-1.wav", sb:task(299).task.nodeList[1].voiceFileId)
  end)

  it("builds and runs with the two commands doc/embedding.md gives", function()
    local script = docs.substitute(docs.block("doc/embedding.md", "# Embedding in a C host", "sh"),
      { { "-o host", "-o " .. q(dir .. "/host") } })
    local built, ok = sandbox.run("cd " .. q(sandbox.root)
      .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS sh -ec "
      .. q(script))
    assert(ok, built)
    local out, status = host(dir .. "/host")
    assert.equal(0, status, out)
    assert.equal("updated: code 0 (success) after 1 attempt(s), HTTP 200\n", out)
  end)

  it("reports a refused update and exits 1", function()
    local out, status = host(HOST, { ITNIO_API_SECRET = "wrong" })
    assert.equal(1, status, out)
    assert.truthy(out:find("^AuthError: "), out)
    assert.equal(0, sb:stats().accepted)
  end)

  it("prints a ConfigError as tostring shows it, not as no message", function()
    local out, status = host(HOST, { ITNIO_API_KEY = "" })
    assert.equal(1, status, out)
    assert.equal("ConfigError: api_key must not be empty\n", out)
  end)

  -- helgrind and DRD, as a C host's developer runs them: doc/embedding.md's command, with
  -- the suppressions of embed/threads.supp (reports inside lua-cjson, libcurl and OpenSSL,
  -- each named there): no report at all. (helgrind took the schema index, built under
  -- pthread_once, for a race.)
  for _, tool in ipairs{ "helgrind", "drd" } do
    it("runs 3 threads under valgrind's " .. tool .. " with no report, as doc/embedding.md says", function()
      local cmd = docs.commands(docs.block("doc/embedding.md", "## Threads", "sh"))[1]
      cmd = docs.substitute(cmd, { { "--tool=helgrind", "--tool=" .. tool .. " --error-exitcode=77" },
        { "embed/threads.supp", q(sandbox.root .. "/embed/threads.supp") }, { "./host", q(HOST) } })
      local env = "env " .. NOWHERE .. " ITNIO_API_KEY=" .. q(sb.api_key) .. " ITNIO_API_SECRET="
        .. q(sb.api_secret) .. " ITNIO_BASE_URL=" .. q(sb.https_url) .. " ITNIO_CAFILE=" .. q(sb.cafile)
      local out = sandbox.run("cd " .. q(dir) .. " && " .. env .. " " .. cmd .. "; echo \"exit=$?\"")
      assert.truthy(out:find("exit=0", 1, true), out)
      assert.truthy(out:find("ERROR SUMMARY: 0 errors", 1, true), out)
      assert.truthy(out:find("3 threads x 1 updates: all succeeded\n", 1, true), out)
    end)
  end

  it("runs 4 threads x 5 updates, one Lua state and one client per thread", function()
    local out, status = host(HOST, nil, "--threads", "4", "--updates", "5")
    assert.equal(0, status, out)
    assert.equal("4 threads x 5 updates: all succeeded\n", out)
    assert.equal(20, sb:stats().accepted)
  end)

  it("runs 4 threads x 5 updates under ThreadSanitizer with no report", function()
    local out, status = host(HOST_TSAN, nil, "--threads", "4", "--updates", "5")
    assert.is_nil(out:find("ThreadSanitizer", 1, true), out)
    assert.equal(0, status, out)
    assert.equal("4 threads x 5 updates: all succeeded\n", out)
    assert.equal(20, sb:stats().accepted)
  end)
end)
