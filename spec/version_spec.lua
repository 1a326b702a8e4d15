-- The version is written in one place (csrc/itnio.h); every module and the command line say
-- the same.
local core    = require "itnio.core"
local sandbox = require "support.sandbox"

describe("the version", function()
  it("is the core's in every module", function()
    assert.truthy(core._VERSION:match("^%d+%.%d+%.%d+$"), core._VERSION)
    for _, name in ipairs{ "itnio", "itnio.errors", "itnio.recall" } do
      assert.equal(core._VERSION, require(name)._VERSION, name)
    end
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
