-- README's code blocks run as written: a README that lies is a bug.
local shell = require "support.shell"

local function readme_block(heading)
  local text = assert(shell.read("README.md"), "README.md")
  local at = assert(text:find(heading, 1, true), "README has no heading " .. heading)
  return assert(text:match("```lua\n(.-)```", at), "no lua block under " .. heading)
end

local function run_script(code, env)
  local path = os.tmpname()
  shell.write(path, code)
  local parts = {}
  for k, v in pairs(env) do parts[#parts + 1] = k .. "='" .. v .. "'" end
  local p = assert(io.popen(table.concat(parts, " ") .. " lua5.4 -e 'package.path = \"lua/?.lua;lua/?/init.lua;\" .. package.path; "
    .. "package.cpath = \"build/lua5.4/?.so;\" .. package.cpath' " .. path .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return out
end

describe("README", function()
  it("the client example updates a task on the sandbox", function()
    local sb = require("support.sandbox").start{}
    local ok, out = pcall(run_script, readme_block("## The client in fifteen lines"), {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.http_url })
    local stored = sb:task(299)
    sb:stop()
    assert(ok, out)
    assert.equal("updated after 1 attempt(s)\n", out)
    assert.equal(1, stored.updates)
  end)

  it("the client example prints a one-line AuthError for a wrong secret", function()
    local sb = require("support.sandbox").start{}
    local ok, out = pcall(run_script, readme_block("## The client in fifteen lines"), {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = "wrong", ITNIO_BASE_URL = sb.http_url })
    sb:stop()
    assert(ok, out)
    assert.truthy(out:find("^AuthError: .- %(code %-1, HTTP 200, 1 attempt%)\tfalse\n$"), out)
  end)

  it("the client example reaches the sandbox over HTTPS with ITNIO_CAFILE", function()
    local sb = require("support.sandbox").start{}
    local ok, out = pcall(run_script, readme_block("## The client in fifteen lines"), {
      ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.https_url,
      ITNIO_CAFILE = sb.cafile })
    sb:stop()
    assert(ok, out)
    assert.equal("updated after 1 attempt(s)\n", out)
  end)

  it("the builders example builds a task the core accepts, as written (no name left undefined)", function()
    local env = setmetatable({}, { __index = function(_, k)
      local v = _G[k]
      if v == nil then error("the example uses " .. tostring(k) .. ", which it never defines", 2) end
      return v
    end })
    local chunk = assert((loadstring or load)(readme_block("## Builders") .. "\nreturn task", "=README", "t", env))
    if setfenv then setfenv(chunk, env) end
    local body, errs = require("itnio.core").encode("recall_update", chunk())
    assert(body, errs and errs[1] and errs[1].message)
    assert.equal(4, #require("cjson").decode(body).nodeList)
  end)

  it("the core example encodes a task and signs it", function()
    local code = readme_block("## The core in ten lines")
    local out = {}
    local env = setmetatable({ print = function(...)
      local t = { ... }
      for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
      out[#out + 1] = table.concat(t, "\t")
    end }, { __index = _G })
    local chunk = assert((loadstring or load)(code, "=README", "t", env))
    if setfenv then setfenv(chunk, env) end
    chunk()
    assert.equal(1, #out)
    local body, sign = out[1]:match("^(.-)\tSign: (%x+)$")
    assert.truthy(body, out[1])
    assert.equal(32, #sign)
    local decoded = require("cjson").decode(body)
    assert.equal(299, decoded.keyId)
    assert.equal("Your parcel is here", decoded.nodeList[1].text)
  end)
end)

-- What README says of other files, checked against them.
describe("README's facts", function()
  local f = assert(io.open("README.md", "rb"))
  local text = f:read("*a")
  f:close()
  local function section(heading)
    local at = assert(text:find("\n## " .. heading .. "\n", 1, true), "no section " .. heading)
    local stop = text:find("\n## ", at + 1, true) or #text
    return text:sub(at, stop)
  end

  it("names, in its compile commands, C files that exist", function()
    local seen = 0
    for line in text:gmatch("[^\n]+") do
      if line:match("^%s+cc ") then
        for file in line:gmatch("(%S+%.c)%f[%s\\]") do
          seen = seen + 1
          local h = io.open(file, "rb")
          assert(h, "README compiles " .. file .. ", which does not exist")
          h:close()
        end
      end
    end
    assert.is_true(seen >= 1)
  end)

  it("says the HTTP status the OpenResty handler answers for each error", function()
    local h = assert(io.open("examples/openresty/handler.lua", "rb"))
    local handler = h:read("*a")
    h:close()
    local map = assert(handler:match("local STATUS = (%b{})"), "handler.lua has no STATUS table")
    local para = section("Inside OpenResty / nginx")
    local said = 0
    for kind, status in map:gmatch("(%w+Error) = (%d+)") do
      -- the clause of the sentence that gives the status names the error, or says "other"
      local at = assert(para:find(status, 1, true), "README does not say the status " .. status)
      local clause = para:sub(at, (para:find("%d%d%d", at + 3) or #para))
      if status ~= "502" then
        assert(clause:find(kind, 1, true), "README's " .. status .. " does not name " .. kind .. ": " .. clause)
      end
      said = said + 1
    end
    assert.is_true(said >= 10)
  end)

  it("gives the LÖVE example a command that runs it", function()
    assert.truthy(section("Inside an engine's loop"):find("\n%s+[^\n]*love examples/love\n"))
  end)

  it("says how to reach a --tree install, and that LuaRocks' line on lua-cjson is expected", function()
    local install = text:match("### Install with LuaRocks\n(.-)\n## ")
    assert.truthy(install:find("luarocks --lua-version 5.4 path --tree", 1, true))
    assert.truthy(install:find("Missing dependencies", 1, true))
  end)

  it("has a make help that names every target the Makefile declares phony, each once", function()
    -- make's own database gives the .PHONY targets as make expands them
    local db = shell.run("env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -qp 2>/dev/null | grep '^\\.PHONY:'")
    assert(db ~= "", db)
    local phony = {}
    for name in db:match("^%.PHONY:([^\n]*)"):gmatch("%S+") do phony[name] = true end
    assert.is_true(phony.check and phony.help, db)
    local out, ok = shell.run("env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory help")
    assert(ok, out)
    local listed = {}
    for line in out:gmatch("[^\n]+") do
      local name = assert(line:match("^make (%S+)%s%s+%S"), "a line of make help names no target: " .. line)
      assert.is_nil(listed[name], "make help lists " .. name .. " twice")
      listed[name] = true
    end
    assert.same(phony, listed)
  end)

  it("says that a retry may apply an update twice, and which errors may have reached the server", function()
    local promises = text:match("### What the client promises\n(.-)\n## ")
    local item = promises:match("%*%*A retry may apply an update twice%.%*%*(.-)\n%- ")
    assert.truthy(item, "no item on retries that apply an update twice")
    assert.truthy(item:find("`sent`", 1, true))
    assert.truthy(item:find("timeout", 1, true))
  end)
end)

-- The Performance table is generated (tools/bench-readme, which `make bench` runs) from the
-- committed results of the last make bench (bench/results.tsv): it must be exactly what the
-- generator makes of them, and the hand-written prose around it must not repeat its figures.
describe("README's Performance section", function()
  local BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

  local function read(path) return assert(shell.read(path), path) end

  -- The section's text (from its heading to the next "## "), and the lines strictly between
  -- the two markers (nil when a marker is missing).
  local function section()
    local text = read("README.md")
    local from = assert(text:find("\n## Performance\n", 1, true), "README has no ## Performance section")
    local to = text:find("\n## ", from + 1, true) or #text
    local sec = text:sub(from + 1, to)
    local b = sec:find("\n" .. BEGIN .. "\n", 1, true)
    local e = b and sec:find("\n" .. END .. "\n", b, true)
    local block = e and sec:sub(b + #BEGIN + 2, e)
    return sec, block, b and e and sec:sub(1, b) .. sec:sub(e + #END + 2) or sec
  end

  local function generate(results)
    local p = assert(io.popen("lua5.4 tools/bench-readme --print '" .. results .. "' 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
  end

  local function rows(path)
    local t = {}
    for line in read(path):gmatch("[^\n]+") do
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
        return ("line %d of the block:\n  README:    %s\n  generated: %s"):format(i, la[i] or "(none)", lb[i] or "(none)")
      end
    end
    return "(the same lines)"
  end

  it("holds the block between " .. BEGIN .. " and " .. END .. ", once each", function()
    local function count(s, plain)
      local n, at = 0, 1
      while true do
        local _, e = s:find(plain, at, true)
        if not e then return n end
        n, at = n + 1, e + 1
      end
    end
    local sec, block = section()
    assert.is_truthy(block, "README's Performance section has no " .. BEGIN .. " ... " .. END .. " block")
    local readme = read("README.md")
    assert.same({ 1, 1, 1, 1 }, { count(sec, BEGIN), count(sec, END), count(readme, BEGIN), count(readme, END) })
  end)

  it("has the table tools/bench-readme makes of bench/results.tsv", function()
    local _, block = section()
    assert(block, "README's Performance section has no " .. BEGIN .. " ... " .. END .. " block")
    local want = generate("bench/results.tsv")
    assert(want:find("^<!%-%-"), "tools/bench-readme failed: " .. want)
    if block ~= want then
      assert.is_true(false, "README's Performance table is not what tools/bench-readme makes of "
        .. "bench/results.tsv (make bench, or lua5.4 tools/bench-readme bench/results.tsv, rewrites it); "
        .. first_difference(block, want))
    end
  end)

  it("shows every row of the results, in order, and a new row with no change to the generator", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(read("bench/results.tsv"),
      "row\tnew.floor\tthe transport alone, no validation\t123.4\treq/s\ta C loop\t567.8\t0.22\t0.20..0.25\n")
    f:close()
    local out = generate(path)
    os.remove(path)
    local table_lines = {}
    for l in out:gmatch("[^\n]+") do
      if l:find("^| ") then table_lines[#table_lines + 1] = l end
    end
    local want = rows("bench/results.tsv")
    assert.equal(#want + 2, #table_lines, out)   -- the header, the committed rows and the new one
    for i, r in ipairs(want) do
      local start = "| " .. r.what:gsub("|", "\\|") .. " | " .. r.ours
      assert(table_lines[i + 1]:find(start, 1, true) == 1, ("row %s: %s"):format(r.id, table_lines[i + 1]))
    end
    assert.equal("| the transport alone, no validation | 123.4 req/s | a C loop: 567.8 req/s | 0.22 (0.20..0.25) |",
      table_lines[#table_lines])
  end)

  it("cites none of the table's figures outside it (they would drift)", function()
    local _, block, prose = section()
    assert(block, "README's Performance section has no generated block")
    for _, r in ipairs(rows("bench/results.tsv")) do
      for _, v in ipairs({ r.ours, r.peer_value, r.ratio, (r.range:match("^(.-)%.%.")), (r.range:match("%.%.(.*)$")) }) do
        -- Figures only: small integers ("1 worker", "Debian 12") are not the table's.
        if v and (v:find("%.") or #v >= 3) then
          local at = prose:find("%f[%w.]" .. v:gsub("%p", "%%%0") .. "%f[^%w.]")
          assert(not at, ("the prose of README's Performance section cites %s (row %s): refer to the table instead")
            :format(v, r.id))
        end
      end
    end
  end)
end)
