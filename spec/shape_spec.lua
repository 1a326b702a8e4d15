-- The shape of the tree (doc/architecture.md): three units, private modules that nothing
-- outside the library reaches into, and generic code that names no endpoint.
local shell = require "support.shell"

local ROOT = shell.root

-- The files git knows under these paths, one per line.
local function files(...)
  local out, ok = shell.run("cd " .. shell.quote(ROOT) .. " && git ls-files -- "
    .. table.concat({ ... }, " "))
  assert(ok, out)
  local list = {}
  for f in out:gmatch("[^\n]+") do list[#list + 1] = f end
  return list
end

-- The lines of a file that are code, not comments (a good-enough cut for Lua: "--" to the end
-- of the line, outside strings is not checked).
local function code_lines(path)
  local text = assert(shell.read(ROOT .. "/" .. path), path)
  local out, n = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local code = line:gsub("%-%-.*$", "")
    if code:find("%S") then out[#out + 1] = { n = n, text = code } end
  end
  return out
end

describe("the shape of the tree", function()
  it("loads nothing of the test kit or the command line with a production require", function()
    local out, ok = shell.run(shell.quote(shell.lua) .. " -e " .. shell.quote(
      ("package.path = %q; package.cpath = %q;"):format(package.path, package.cpath)
      .. " local itnio = require 'itnio'; local c = assert(itnio.new{ api_key = 'k', api_secret = 's' });"
      .. " require 'itnio.recall'; for name in pairs(package.loaded) do print(name) end"))
    assert(ok, out)
    assert.truthy(out:find("itnio.internal.runner", 1, true), out)
    for name in out:gmatch("[^\n]+") do
      assert.is_nil(name:find("^itnio%.testing"), name)
      assert.is_nil(name:find("^itnio%.cli"), name)
    end
  end)

  it("keeps the private modules private: only the library's own units require them", function()
    -- The client's (itnio.internal.*) from the client alone; the test kit's from the test kit.
    local outside = files("bin", "examples", "lua/itnio/cli", "lua/itnio/testing")
    for _, f in ipairs(outside) do
      if f:find("%.lua$") or f:find("^bin/") then
        for _, l in ipairs(code_lines(f)) do
          assert.is_nil(l.text:find("itnio%.internal"), f .. ":" .. l.n .. ": " .. l.text)
          if not f:find("^lua/itnio/testing/") then
            assert.is_nil(l.text:find("itnio%.testing%.internal"), f .. ":" .. l.n .. ": " .. l.text)
          end
        end
      end
    end
  end)

  it("says in each private module's first line that it is private", function()
    for _, f in ipairs(files("lua/itnio/internal", "lua/itnio/testing/internal")) do
      local first = assert(shell.read(ROOT .. "/" .. f)):match("^[^\n]*")
      assert.truthy(first:find("Private to lua%-itnio"), f .. ": " .. first)
    end
  end)

  it("names every file of the tree in doc/architecture.md", function()
    local doc = assert(shell.read(ROOT .. "/doc/architecture.md"))
    for _, f in ipairs(files(".")) do
      local dir = f:match("^spec/") and "spec/" or f:match("^(fuzz/seeds%-[%w-]+/)")
      if dir then   -- the specs and the seeds are named by their directory
        assert.truthy(doc:find(dir:match("([^/]+/)$"), 1, true), f)
      else
        local base = f:match("([^/]+)$")
        assert.truthy(doc:find(base, 1, true), "doc/architecture.md does not name " .. f)
      end
    end
  end)

  it("names no endpoint in its generic code (a second endpoint needs only its schema row)", function()
    local generic = files("lua/itnio/init.lua", "lua/itnio/internal", "lua/itnio/cli", "bin",
                          "lua/itnio/testing/init.lua", "lua/itnio/testing/sandbox.lua")
    for _, f in ipairs(generic) do
      for _, l in ipairs(code_lines(f)) do
        assert.is_nil(l.text:lower():find("recall"), f .. ":" .. l.n .. ": " .. l.text)
      end
    end
  end)
end)
