-- bin/itnio against the sandbox: exit status, output, and nothing sent when nothing should be.
local cjson   = require "cjson"
local sandbox = require "support.sandbox"

local TASK = '{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
  .. '"nodeList":[{"source":1,"voiceFileId":"cli.wav","hangUpSms":0,"toSeat":0,"voiceFileName":null}]}'

-- Runs bin/itnio with env and stdin; returns stdout+stderr and the exit status.
local function itnio(env, stdin, ...)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(stdin or "")
  f:close()
  local parts = { "env -u ITNIO_API_KEY -u ITNIO_API_SECRET -u ITNIO_BASE_URL -u ITNIO_CAFILE" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. sandbox.shell_quote(v) end
  parts[#parts + 1] = sandbox.shell_quote(sandbox.root .. "/bin/itnio")
  for i = 1, select("#", ...) do parts[#parts + 1] = sandbox.shell_quote((select(i, ...))) end
  local out = sandbox.run(table.concat(parts, " ") .. " < " .. path .. "; echo \"exit=$?\"")
  os.remove(path)
  local text, status = out:match("^(.*)exit=(%d+)%s*$")
  return text, tonumber(status)
end

describe("bin/itnio", function()
  local sb, env
  setup(function()
    sb = sandbox.start{}
    env = { ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.http_url }
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("updates a task read from standard input", function()
    local out, status = itnio(env, TASK, "recall-update", "-")
    assert.equal(0, status, out)
    assert.equal("updated: code 0 (success), 1 attempt(s)\n", out)
    assert.equal("cli.wav", sb:task(299).task.nodeList[1].voiceFileId)
  end)

  it("updates a task read from a file, over HTTPS with ITNIO_CAFILE, and answers JSON", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(TASK)
    f:close()
    local e = { ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret,
                ITNIO_BASE_URL = sb.https_url, ITNIO_CAFILE = sb.cafile }
    local out, status = itnio(e, nil, "recall-update", path, "--json")
    os.remove(path)
    assert.equal(0, status, out)
    local r = cjson.decode(out)
    assert.is_true(r.ok)
    assert.equal(0, r.code)
    assert.equal(200, r.http_status)
  end)

  it("prints the request of a dry run with the Sign redacted, and sends nothing", function()
    local out, status = itnio(env, TASK, "recall-update", "-", "--dry-run")
    assert.equal(0, status, out)
    assert.truthy(out:find("POST " .. sb.http_url .. "/voice/recallFlow/update\n", 1, true))
    assert.truthy(out:find("Sign: <redacted>\n", 1, true))
    assert.truthy(out:find('"voiceFileId":"cli.wav"', 1, true))
    assert.is_nil(out:find(sb.api_secret, 1, true))
    assert.equal(0, sb:stats().requests)
  end)

  it("exits 3 and lists every broken rule, sending nothing", function()
    local out, status = itnio(env, '{"keyId":0,"recallType":5,"recallInterval":30,"recallNum":1}', "recall-update", "-")
    assert.equal(3, status)
    assert.truthy(out:find("T1\tkeyId\t", 1, true), out)
    assert.truthy(out:find("T4\trecallType\t", 1, true), out)
    assert.equal(0, sb:stats().requests)
  end)

  it("exits 1 with one line for a refusal of the API", function()
    local out, status = itnio({ ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = "wrong", ITNIO_BASE_URL = sb.http_url },
                              TASK, "recall-update", "-")
    assert.equal(1, status)
    assert.truthy(out:find("^itnio: AuthError: "), out)
    assert.is_nil(out:find("wrong", 1, true))
  end)

  it("exits 1 with kind and reason as JSON when nothing answers", function()
    local out, status = itnio({ ITNIO_API_KEY = "k", ITNIO_API_SECRET = "s", ITNIO_BASE_URL = "http://127.0.0.1:9" },
                              TASK, "recall-update", "-", "--json")
    assert.equal(1, status)
    local r = cjson.decode(out)
    assert.equal("TransportError", r.error.kind)
    assert.equal("connect", r.error.reason)
    assert.is_false(r.error.sent)
  end)

  local usage = {
    { "no command", {} },
    { "an unknown command", { "delete-task" } },
    { "no file", { "recall-update" } },
    { "an unknown option", { "recall-update", "-", "--force" } },
    { "a missing file", { "recall-update", "/nonexistent/task.json" } },
  }
  for _, row in ipairs(usage) do
    it("exits 2 with the usage for " .. row[1], function()
      local out, status = itnio(env, TASK, (table.unpack or unpack)(row[2]))
      assert.equal(2, status)
      assert.truthy(out:find("usage: itnio recall-update", 1, true), out)
    end)
  end

  it("exits 2 for input that is not a JSON object", function()
    for _, bad in ipairs({ "{nope", "[1,2]", '"task"', "" }) do
      local out, status = itnio(env, bad, "recall-update", "-")
      assert.equal(2, status, bad .. " -> " .. out)
      assert.truthy(out:find("not a JSON object", 1, true), out)
    end
  end)

  it("exits 2 without credentials (outside a dry run)", function()
    local out, status = itnio({ ITNIO_BASE_URL = sb.http_url }, TASK, "recall-update", "-")
    assert.equal(2, status)
    assert.truthy(out:find("ConfigError", 1, true), out)
  end)
end)
