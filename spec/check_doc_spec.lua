-- tools/check-doc catches what makes the API reference read badly: raw HTML in a doc comment
-- (Lua and C), an empty summary in the index, a parameter without a description, a documented
-- function missing from its page, a page in plain text; and what it caught before (a public
-- function without a doc comment). Each case is a small tree made here: a doc/config.ld, the
-- sources, and the pages as LDoc writes them (no LDoc needed), with one thing broken.

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local CONFIG = [[
project = "t"
dir = "../build/doc"
file = { "../csrc/core.c", "../lua/m.lua" }
format = "discount"
]]

local C = [[
/***
 * @module core
 */
#include <lua.h>

/*** Echoes s.
 * @function echo
 * @tparam string s what to echo
 * @treturn string s */
static int echo(lua_State *L) { return 1; }

static const luaL_Reg funcs[] = { { "echo", echo }, { NULL, NULL } };
]]

local LUA = [[
--- M: a module.
--
--     local m = require "m"   -- a code block: "<b>" is shown as written
--
-- Uses `a < b` and `<tags>` in backticks, a < b and c > d, and <https://example.com>.
-- @module m
local _M = {}

--- Adds one.
-- @tparam number a the number
-- @treturn number a + 1
function _M.add(a)
  return a + 1
end

return _M
]]

local INDEX = [[
<html><head></head><body><div id="content">
<table class="module_list">
	<tr>
		<td class="name"  nowrap><a href="modules/core.html">core</a></td>
		<td class="summary">The core.</td>
	</tr>
	<tr>
		<td class="name"  nowrap><a href="modules/m.html">m</a></td>
		<td class="summary">M: a module.</td>
	</tr>
</table>
</div></body></html>
]]

local CORE_PAGE = [[
<html><head></head><body>
    <h2 class="section-header "><a name="Functions"></a>Functions</h2>
    <a name = "echo"></a>
    <h3>Parameters:</h3>
    <ul>
        <li><span class="parameter">s</span>
            <span class="types"><a class="type" href="x">string</a></span>
         what to echo
        </li>
    </ul>
</body></html>
]]

local M_PAGE = [[
<html><head></head><body>
<p>Uses <code>a &lt; b</code>.</p>
<pre><code>local m = `x`</code></pre>
    <h2 class="section-header "><a name="Functions"></a>Functions</h2>
    <a name = "add"></a>
    <h3>Parameters:</h3>
    <ul>
        <li><span class="parameter">a</span>
            <span class="types"><span class="type">number</span></span>
         the number
        </li>
    </ul>
</body></html>
]]

-- A tree with every file as above but those in `changes` (path -> text).
local function tree(changes)
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("*l")
  p:close()
  assert(os.execute("mkdir -p " .. shell_quote(dir) .. "/doc " .. shell_quote(dir) .. "/csrc "
    .. shell_quote(dir) .. "/lua " .. shell_quote(dir) .. "/build/doc/modules"))
  local files = {
    ["doc/config.ld"] = CONFIG, ["csrc/core.c"] = C, ["lua/m.lua"] = LUA,
    ["build/doc/index.html"] = INDEX, ["build/doc/modules/core.html"] = CORE_PAGE,
    ["build/doc/modules/m.html"] = M_PAGE,
  }
  for path, text in pairs(changes or {}) do files[path] = text end
  for path, text in pairs(files) do write(dir .. "/" .. path, text) end
  return dir
end

-- check-doc's output (stdout and stderr) on a tree, and whether it exited 0.
local function check(changes)
  local dir = tree(changes)
  local p = assert(io.popen("lua5.4 tools/check-doc " .. shell_quote(dir) .. " 2>&1; echo \"__rc=$?\""))
  local out = p:read("*a")
  p:close()
  os.execute("rm -rf " .. shell_quote(dir))
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return body, rc == "0"
end

-- Asserts that check-doc fails with exactly these problem lines (and its count).
local function fails_with(changes, want)
  local out, ok = check(changes)
  assert.is_false(ok, out)
  local got = {}
  for line in out:gmatch("[^\n]+") do
    if not line:match("^check%-doc: %d+ problem") then got[#got + 1] = line end
  end
  table.sort(got)
  table.sort(want)
  assert.same(want, got)
  assert.truthy(out:find("check-doc: " .. #want .. " problem(s)", 1, true), out)
end

local function swap(text, old, new)
  local s, e = text:find(old, 1, true)
  assert(s, "not in the text: " .. old)
  return text:sub(1, s - 1) .. new .. text:sub(e + 1)
end

describe("tools/check-doc", function()
  it("passes a tree whose doc comments and pages read well", function()
    local out, ok = check()
    assert.is_true(ok, out)
    assert.truthy(out:find("every public function has a doc comment", 1, true), out)
  end)

  it("names raw HTML in a Lua doc comment, by file and line", function()
    fails_with({ ["lua/m.lua"] = swap(LUA, "-- @tparam number a the number",
      '-- Shows the Sign header as "<redacted>", <b>bold</b> and <a href="x">a link</a>.\n'
      .. "-- @tparam number a the number") }, {
      "lua/m.lua:10: raw HTML <redacted> in a doc comment (put it in backticks)",
      "lua/m.lua:10: raw HTML <b> in a doc comment (put it in backticks)",
      "lua/m.lua:10: raw HTML </b> in a doc comment (put it in backticks)",
      'lua/m.lua:10: raw HTML <a href="x"> in a doc comment (put it in backticks)',
      "lua/m.lua:10: raw HTML </a> in a doc comment (put it in backticks)",
    })
  end)

  it("names raw HTML in a C doc comment, by file and line", function()
    fails_with({ ["csrc/core.c"] = swap(C, " * @tparam string s what to echo",
      " * @tparam string s what to echo, as <s>\n * (never <!-- a comment -->)") }, {
      "csrc/core.c:8: raw HTML <s> in a doc comment (put it in backticks)",
      "csrc/core.c:9: raw HTML <!-- a comment --> in a doc comment (put it in backticks)",
    })
  end)

  it("takes a code span over two lines as code", function()
    local out, ok = check({ ["lua/m.lua"] = swap(LUA, "-- @tparam number a the number",
      '-- Shows the Sign header as `Sign =\n-- "<redacted>"`.\n-- @tparam number a the number') })
    assert.is_true(ok, out)
  end)

  it("names a module or topic row of the index whose summary is empty", function()
    fails_with({ ["build/doc/index.html"] = swap(INDEX, '<td class="summary">M: a module.</td>',
      '<td class="summary"></td>') }, {
      "build/doc/index.html: m (modules/m.html) has an empty summary",
    })
  end)

  it("names a parameter without a description, by its doc comment's file and line", function()
    fails_with({ ["build/doc/modules/m.html"] = swap(M_PAGE, "the number", "(<em>optional</em>)"),
                 ["build/doc/modules/core.html"] = swap(CORE_PAGE, "what to echo", "") }, {
      "lua/m.lua:9: add: parameter a has no description (build/doc/modules/m.html)",
      "csrc/core.c:6: echo: parameter s has no description (build/doc/modules/core.html)",
    })
  end)

  it("names a documented function that its page does not show", function()
    fails_with({ ["build/doc/modules/m.html"] = swap(M_PAGE, '<a name = "add"></a>', "") }, {
      "lua/m.lua:9: add is documented but missing from build/doc/modules/m.html (is its doc "
        .. "comment right below another function's header? LDoc takes it for that one's)",
    })
  end)

  it("names a page that LDoc wrote in plain text", function()
    fails_with({ ["build/doc/modules/m.html"] = swap(M_PAGE, "<p>Uses <code>a &lt; b</code>.</p>",
      "<p>Uses `a &lt; b`.</p>") }, {
      "build/doc/modules/m.html: shows `a &lt; b` as typed: LDoc wrote plain text, not Markdown "
        .. "(the format in doc/config.ld; is lua-discount installed? tools/install-deps)",
    })
  end)

  it("names typography in code, a summary cut short, and a code line too long for the column", function()
    local long = "local x = " .. string.rep("y", 75)
    fails_with({
      ["build/doc/modules/m.html"] = swap(M_PAGE, "<p>Uses <code>a &lt; b</code>.</p>",
        "<p>Uses <code>itnio &ndash;batch</code>.</p>\n<pre>" .. long .. "</pre>"),
      ["build/doc/index.html"] = swap(INDEX, '<td class="summary">The core.</td>',
                                      '<td class="summary">MD5(api_key ..</td>'),
    }, {
      "build/doc/modules/m.html: code `itnio &ndash;batch` shows &ndash; (SmartyPants)",
      "build/doc/modules/m.html: a code block line of 85 characters: " .. long,
      'build/doc/index.html: a summary cut short: MD5(api_key .. (LDoc stops at the first ". ")',
    })
  end)

  it("still names a public function without a doc comment, and a C function without one", function()
    fails_with({ ["lua/m.lua"] = swap(LUA, "return _M\n",
                                      "function _M.sub(a) return a - 1 end\n\nreturn _M\n"),
                 ["csrc/core.c"] = swap(C, '{ "echo", echo },', '{ "echo", echo }, { "nop", echo },') }, {
      "lua/m.lua:16: _M.sub has no doc comment (a block starting with ---)",
      "csrc: nop is registered but has no @function doc comment",
    })
  end)
end)
