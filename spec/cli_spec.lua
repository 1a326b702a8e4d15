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

  -- 1: the API answered no; retrying the same request cannot help.
  local refused = {
    { "ParameterError", { kind = "code", code = -22, count = 1 } },
    { "IpLimitError", { kind = "code", code = -2, count = 1 } },
    { "ApiError", { kind = "code", code = -7, count = 1 } },
    { "HttpError", { kind = "status", status = 404, count = 1 }, 404 },
    { "DecodeError", { kind = "answer", status = 200, body = "<html>not JSON</html>", count = 1 } },
  }
  -- Sends TASK against fault; the exit status, the error's kind and its attempts (also the
  -- sandbox's request count) must be as given.
  local function expect_exit(fault, code, kind, attempts)
    sb:fault(fault)
    local out, status = itnio(env, TASK, "recall-update", "-", "--json")
    assert.equal(code, status, out)
    local r = cjson.decode(out)
    assert.equal(kind, r.error.kind)
    assert.equal(attempts, r.error.attempts)
    assert.equal(attempts, sb:stats().requests)
  end
  for _, row in ipairs(refused) do
    it("exits 1 for a " .. row[1] .. (row[3] and (" " .. row[3]) or "") .. ", after one attempt", function()
      expect_exit(row[2], 1, row[1], 1)
    end)
  end

  -- 4: no answer, or one that says "later": the client retried, the script may retry later.
  local later = {
    { "HttpError 503", "HttpError", { kind = "status", status = 503, retry_after = 0, count = 3 } },
    { "HttpError 429", "HttpError", { kind = "status", status = 429, retry_after = 0, count = 3 } },
    { "SystemError (-18)", "SystemError", { kind = "code", code = -18, count = 3 } },
    { "connection reset", "TransportError", { kind = "reset", count = 3 } },
  }
  for _, row in ipairs(later) do
    it("exits 4 for a " .. row[1] .. ", after the client's own retries", function()
      expect_exit(row[3], 4, row[2], 3)
    end)
  end

  it("exits 0 when one of the client's own retries succeeds", function()
    sb:fault{ kind = "status", status = 502, retry_after = 0, count = 2 }
    local out, status = itnio(env, TASK, "recall-update", "-")
    assert.equal(0, status, out)
    assert.equal("updated: code 0 (success), 3 attempt(s)\n", out)
  end)

  it("exits 4 with kind and reason as JSON when nothing answers", function()
    local out, status = itnio({ ITNIO_API_KEY = "k", ITNIO_API_SECRET = "s", ITNIO_BASE_URL = "http://127.0.0.1:9" },
                              TASK, "recall-update", "-", "--json")
    assert.equal(4, status)
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
    { "an unknown short option", { "recall-update", "-", "-f" } },
    { "an unknown option before the command", { "--verbose", "recall-update", "-" } },
    { "two task files", { "recall-update", "-", "other.json" } },
    { "a missing file", { "recall-update", "/nonexistent/task.json" } },
  }
  for _, row in ipairs(usage) do
    it("exits 2 with the usage for " .. row[1], function()
      local out, status = itnio(env, TASK, (table.unpack or unpack)(row[2]))
      assert.equal(2, status)
      assert.truthy(out:find("usage: itnio recall-update", 1, true), out)
    end)
  end

  for _, args in ipairs({ { "--help" }, { "-h" }, { "help" }, { "recall-update", "-", "--help" } }) do
    it("prints the help and exits 0 for itnio " .. table.concat(args, " "), function()
      local out, status = itnio(env, TASK, (table.unpack or unpack)(args))
      assert.equal(0, status, out)
      for _, want in ipairs({ "usage: itnio recall-update FILE|- [--dry-run] [--json] [--passthrough]",
                              "--dry-run", "--json", "--passthrough", "--version", "-h, --help",
                              "ITNIO_API_KEY", "ITNIO_API_SECRET", "ITNIO_BASE_URL", "ITNIO_CAFILE",
                              "Exit status", "\n  0  updated", "\n  1  ", "\n  2  usage",
                              "\n  3  the task breaks", "\n  4  no answer" }) do
        assert.truthy(out:find(want, 1, true), want)
      end
      assert.equal(0, sb:stats().requests)
    end)
  end

  it("prints the version of the core and exits 0", function()
    local out, status = itnio(env, nil, "--version")
    assert.equal(0, status, out)
    assert.equal("itnio " .. require("itnio.core")._VERSION .. "\n", out)
  end)

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
