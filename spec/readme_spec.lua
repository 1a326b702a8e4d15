-- README's code blocks run as written: a README that lies is a bug.
local function readme_block(heading)
  local f = assert(io.open("README.md", "rb"))
  local text = f:read("*a")
  f:close()
  local at = assert(text:find(heading, 1, true), "README has no heading " .. heading)
  return assert(text:match("```lua\n(.-)```", at), "no lua block under " .. heading)
end

describe("README", function()
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
