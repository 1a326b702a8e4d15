-- The version is written in one place (csrc/itnio.h); the client says it (itnio._VERSION),
-- and so do the command line and the rocks.
local core    = require "itnio.core"
local sandbox = require "support.sandbox"

describe("the version", function()
  it("is the core's, and the client's", function()
    assert.truthy(core._VERSION:match("^%d+%.%d+%.%d+$"), core._VERSION)
    assert.equal(core._VERSION, require("itnio")._VERSION)
  end)

  it("is set in one place of the Lua layer", function()
    local out = sandbox.run("cd " .. sandbox.shell_quote(sandbox.root)
      .. " && git grep -n -E '_VERSION *=[^=]' -- lua bin")
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(1, #lines, out)
    assert.truthy(lines[1]:find("^lua/itnio/init%.lua:"), out)
  end)

  it("is written once in the sources", function()
    local out = sandbox.run("cd " .. sandbox.shell_quote(sandbox.root) .. " && git grep -n -F -e '\""
      .. core._VERSION .. "\"' -- csrc lua bin examples embed tools")
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(1, #lines, out)
    assert.truthy(lines[1]:find("^csrc/itnio%.h:"), out)
  end)
end)
