-- bin/itnio against the sandbox: exit status, output, and nothing sent when nothing should be.
local cjson   = require "cjson"
local sandbox = require "support.sandbox"

local TASK = '{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
  .. '"nodeList":[{"source":1,"voiceFileId":"cli.wav","hangUpSms":0,"toSeat":0,"voiceFileName":null}]}'

-- Runs bin/itnio with env and stdin (a string, or { from = path } to read a file or device);
-- returns stdout+stderr and the exit status.
local function itnio(env, stdin, ...)
  local path = type(stdin) == "table" and stdin.from
  local tmp = not path and os.tmpname()
  if tmp then
    local f = assert(io.open(tmp, "wb"))
    f:write(stdin or "")
    f:close()
    path = tmp
  end
  -- At most 1 GiB of address space: an itnio that reads /dev/zero to the end fails fast on its
  -- own instead of taking the memory of the machine (the 100 MiB limit needs about 200 MiB).
  local parts = { "ulimit -v 1048576 && env -u ITNIO_API_KEY -u ITNIO_API_SECRET -u ITNIO_BASE_URL"
                  .. " -u ITNIO_CAFILE" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. sandbox.shell_quote(v) end
  parts[#parts + 1] = sandbox.shell_quote(sandbox.root .. "/bin/itnio")
  for i = 1, select("#", ...) do parts[#parts + 1] = sandbox.shell_quote((select(i, ...))) end
  local out = sandbox.run(table.concat(parts, " ") .. " < " .. sandbox.shell_quote(path)
    .. "; echo \"exit=$?\"")
  if tmp then os.remove(tmp) end
  local text, status = out:match("^(.*)exit=(%d+)%s*$")
  return text, tonumber(status)
end

-- Every key of an error under --json (doc/command-line.md, "Input and output"): null when
-- absent.
local ERROR_KEYS = { "kind", "code", "message", "retryable", "http_status", "retry_after",
                     "attempts", "reason", "sent" }

describe("bin/itnio", function()
  local sb, env
  setup(function()
    sb = sandbox.start{}
    env = { ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = sb.api_secret, ITNIO_BASE_URL = sb.http_url }
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  -- The error of a --json run: all of the output is one line, one JSON object {ok = false,
  -- error = {...}} with every key of ERROR_KEYS, and the secret is nowhere in it.
  local function json_error(out)
    assert.truthy(out:find("^[^\n]*\n$"), out)
    local r = cjson.decode(out)
    assert.is_false(r.ok)
    for _, k in ipairs(ERROR_KEYS) do assert.is_not_nil(r.error[k], k .. " is missing: " .. out) end
    assert.is_nil(out:find(sb.api_secret, 1, true))
    return r.error
  end
  -- Asserts that err has the fields of want, null for every other key but message (a
  -- string), and no key but those of ERROR_KEYS.
  local function expect_fields(want, err)
    local known = {}
    for _, k in ipairs(ERROR_KEYS) do
      known[k] = true
      if k ~= "message" then
        local w = want[k]
        if w == nil then w = cjson.null end
        assert.equal(w, err[k], k)
      end
    end
    assert.is_string(err.message)
    for k in pairs(err) do assert.is_true(known[k], "unexpected key " .. k) end
  end

  it("updates a task read from standard input", function()
    local out, status = itnio(env, TASK, "recall-update", "-")
    assert.equal(0, status, out)
    assert.equal("recall-update: done, code 0 (success), 1 attempt(s)\n", out)
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
    local out, status = itnio(env, '{"keyId":0,"recallType":5,"recallInterval":30,"recallNum":1}',
                              "recall-update", "-")
    assert.equal(3, status)
    assert.truthy(out:find("T1\tkeyId\t", 1, true), out)
    assert.truthy(out:find("T4\trecallType\t", 1, true), out)
    assert.equal(0, sb:stats().requests)
  end)

  it("exits 3 with every broken rule as JSON, sending nothing", function()
    local out, status = itnio(env, '{"keyId":0,"recallType":5,"recallInterval":30,"recallNum":1}',
                              "recall-update", "-", "--json")
    assert.equal(3, status, out)
    local err = json_error(out)
    local errors = err.errors
    err.errors = nil   -- the one key beyond ERROR_KEYS, checked below
    expect_fields({ kind = "ValidationError", retryable = false, attempts = 0 }, err)
    local rules = {}
    for _, e in ipairs(errors) do   -- each {rule, field, message}, three strings and no more
      assert.same({ rule = tostring(e.rule), field = tostring(e.field), message = tostring(e.message) }, e)
      rules[e.rule .. " " .. e.field] = true
    end
    assert.is_true(rules["T1 keyId"])
    assert.is_true(rules["T4 recallType"])
    assert.equal(0, sb:stats().requests)
  end)

  it("exits 1 with one line for a refusal of the API", function()
    local out, status = itnio({ ITNIO_API_KEY = sb.api_key, ITNIO_API_SECRET = "wrong",
                                ITNIO_BASE_URL = sb.http_url },
                              TASK, "recall-update", "-")
    assert.equal(1, status)
    assert.truthy(out:find("^itnio: AuthError: "), out)
    assert.is_nil(out:find("wrong", 1, true))
  end)

  -- Sends TASK against fault with --json; the exit status and every field of the error but
  -- its message must be as given (want), its attempts also the sandbox's request count.
  local function expect_exit(fault, code, want)
    sb:fault(fault)
    local out, status = itnio(env, TASK, "recall-update", "-", "--json")
    assert.equal(code, status, out)
    expect_fields(want, json_error(out))
    assert.equal(want.attempts, sb:stats().requests)
  end

  -- 1: the API answered no; retrying the same request cannot help.
  local refused = {
    { "ParameterError", { kind = "code", code = -22, count = 1 },
      { kind = "ParameterError", code = -22, retryable = false, http_status = 200, attempts = 1 } },
    { "IpLimitError", { kind = "code", code = -2, count = 1 },
      { kind = "IpLimitError", code = -2, retryable = false, http_status = 200, attempts = 1 } },
    { "ApiError", { kind = "code", code = -7, count = 1 },
      { kind = "ApiError", code = -7, retryable = false, http_status = 200, attempts = 1 } },
    { "HttpError 404", { kind = "status", status = 404, count = 1 },
      { kind = "HttpError", retryable = false, http_status = 404, attempts = 1 } },
    { "DecodeError", { kind = "answer", status = 200, body = "<html>not JSON</html>", count = 1 },
      { kind = "DecodeError", retryable = false, http_status = 200, attempts = 1 } },
  }
  for _, row in ipairs(refused) do
    it("exits 1 for a " .. row[1] .. ", after one attempt, with every field as JSON", function()
      expect_exit(row[2], 1, row[3])
    end)
  end

  -- 4: no answer, or one that says "later": the client retried (unless the wait asked for is
  -- longer than it will wait), the script may retry later; http_status and retry_after say which.
  local later = {
    { "HttpError 503", { kind = "status", status = 503, retry_after = 0, count = 3 },
      { kind = "HttpError", retryable = true, http_status = 503, retry_after = 0, attempts = 3 } },
    { "HttpError 429", { kind = "status", status = 429, retry_after = 0, count = 3 },
      { kind = "HttpError", retryable = true, http_status = 429, retry_after = 0, attempts = 3 } },
    { "HttpError 429 with Retry-After: 120 (past max_retry_after)",
      { kind = "status", status = 429, retry_after = 120, count = 1 },
      { kind = "HttpError", retryable = true, http_status = 429, retry_after = 120, attempts = 1 } },
    { "SystemError (-18)", { kind = "code", code = -18, count = 3 },
      { kind = "SystemError", code = -18, retryable = true, http_status = 200, attempts = 3 } },
    { "connection reset", { kind = "reset", count = 3 },   -- curl's CURLE_GOT_NOTHING, after sending
      { kind = "TransportError", code = 52, retryable = true, reason = "reset", sent = true, attempts = 3 } },
  }
  for _, row in ipairs(later) do
    it("exits 4 for a " .. row[1] .. ", with every field as JSON", function()
      expect_exit(row[2], 4, row[3])
    end)
  end

  it("exits 0 when one of the client's own retries succeeds", function()
    sb:fault{ kind = "status", status = 502, retry_after = 0, count = 2 }
    local out, status = itnio(env, TASK, "recall-update", "-")
    assert.equal(0, status, out)
    assert.equal("recall-update: done, code 0 (success), 3 attempt(s)\n", out)
  end)

  it("exits 4 with kind and reason as JSON when nothing answers", function()
    local out, status = itnio({ ITNIO_API_KEY = "k", ITNIO_API_SECRET = "s",
                                ITNIO_BASE_URL = "http://127.0.0.1:9" },
                              TASK, "recall-update", "-", "--json")
    assert.equal(4, status)
    expect_fields({ kind = "TransportError", code = 7, retryable = true, attempts = 3, reason = "connect",
                    sent = false }, json_error(out))   -- 7: curl's CURLE_COULDNT_CONNECT
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
    it("exits 2 with a UsageError as JSON for " .. row[1] .. " with --json", function()
      local args = { (table.unpack or unpack)(row[2]) }
      args[#args + 1] = "--json"
      local out, status = itnio(env, TASK, (table.unpack or unpack)(args))
      assert.equal(2, status, out)
      expect_fields({ kind = "UsageError", retryable = false }, json_error(out))
      assert.equal(0, sb:stats().requests)
    end)
  end

  -- Input that cannot be a task: each is a usage error (2) whose message names the problem,
  -- read no further than 100 MiB (/dev/zero never ends), and nothing is sent.
  local bad_input = {
    { "an empty JSON array", "[]", "-", "itnio: the task is not a JSON object (an array)\n" },
    { "a JSON array after white space", " \r\n\t[ ]", "-",
      "itnio: the task is not a JSON object (an array)\n" },
    { "a directory as the task file", nil, sandbox.root,
      "itnio: '" .. sandbox.root .. "' is a directory, not a task file\n" },
    { "a directory on standard input", { from = sandbox.root }, "-",
      "itnio: standard input is a directory, not a task file\n" },
    { "/dev/zero as the task file", nil, "/dev/zero",
      "itnio: '/dev/zero' is larger than 100 MiB, the most a task can be\n" },
    { "/dev/zero on standard input", { from = "/dev/zero" }, "-",
      "itnio: standard input is larger than 100 MiB, the most a task can be\n" },
  }
  for _, row in ipairs(bad_input) do
    local name, stdin, file, says = row[1], row[2], row[3], row[4]
    it("exits 2 and says why for " .. name, function()
      local out, status = itnio(env, stdin, "recall-update", file)
      assert.equal(2, status, out)
      assert.equal(says, out:sub(1, #says))
      assert.equal(0, sb:stats().requests)
    end)
    it("exits 2 with a UsageError as JSON for " .. name, function()
      local out, status = itnio(env, stdin, "recall-update", file, "--json")
      assert.equal(2, status, out)
      local err = json_error(out)
      expect_fields({ kind = "UsageError", retryable = false }, err)
      assert.equal(says:match("^itnio: (.*)\n$"), err.message)
      assert.equal(0, sb:stats().requests)
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
                              "\n  3  the task breaks", "\n  4  no answer", "at most 100 MiB",
                              "larger than 100 MiB", "UsageError", '{"ok":false,"error":{"kind":',
                              '"http_status":...,"retry_after":...', "null when it does not apply",
                              '"errors":[{"rule":...,"field":...,"message":...}]' }) do
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

  it("names the option a misspelled one was meant to be", function()
    for bad, meant in pairs{ ["--dry-rn"] = "--dry-run", ["--concurency"] = "--concurrency",
                             ["--jsn"] = "--json", ["--stor"] = "--store" } do
      local out, status = itnio({}, TASK, "recall-update", "-", bad)
      assert.equal(2, status, out)
      local said = "unknown option '" .. bad .. "' (did you mean '" .. meant .. "'?)"
      assert.truthy(out:find(said, 1, true), out)
    end
    local out, status = itnio({}, TASK, "recall-update", "-", "--xyzzy")
    assert.equal(2, status)
    assert.truthy(out:find("unknown option '--xyzzy'\n", 1, true), out)   -- (nothing near: no guess)
  end)

  it("exits 2 without credentials (outside a dry run)", function()
    local out, status = itnio({ ITNIO_BASE_URL = sb.http_url }, TASK, "recall-update", "-")
    assert.equal(2, status)
    assert.truthy(out:find("ConfigError", 1, true), out)
  end)

  -- The options itnio.new refuses come from the environment: the error names the variable.
  local refused_config = {
    { "no credentials", {}, "api_key is required (it comes from ITNIO_API_KEY)" },
    { "no secret", { ITNIO_API_KEY = "k" }, "api_secret is required (it comes from ITNIO_API_SECRET)" },
    -- with the sandbox's secret, which json_error looks for in the output
    { "a base URL that is not one", { ITNIO_API_KEY = "k", ITNIO_API_SECRET = "sandbox-secret",
      ITNIO_BASE_URL = "ftp://127.0.0.1" }, "base_url must be http or https (it comes from ITNIO_BASE_URL)" },
  }
  for _, row in ipairs(refused_config) do
    it("exits 2 with a ConfigError as JSON for " .. row[1], function()
      local out, status = itnio(row[2], TASK, "recall-update", "-", "--json")
      assert.equal(2, status, out)
      local err = json_error(out)
      expect_fields({ kind = "ConfigError", retryable = false }, err)
      assert.equal(row[3], err.message)
      assert.equal(0, sb:stats().requests)
    end)
  end
end)
