-- README's code blocks run as written: a README that lies is a bug.
local function readme_block(heading)
  local f = assert(io.open("README.md", "rb"))
  local text = f:read("*a")
  f:close()
  local at = assert(text:find(heading, 1, true), "README has no heading " .. heading)
  return assert(text:match("```lua\n(.-)```", at), "no lua block under " .. heading)
end

local function run_script(code, env)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(code)
  f:close()
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

  it("the builders example builds a task the core accepts", function()
    local env = setmetatable({ base64_text = "QUJD" }, { __index = _G })
    local chunk = assert((loadstring or load)(readme_block("## Builders") .. "\nreturn task", "=README", "t", env))
    if setfenv then setfenv(chunk, env) end
    local body, errs = require("itnio.core").encode_recall_update(chunk())
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
