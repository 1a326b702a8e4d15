-- Property: whatever the server sends, a call returns. Thousands of generated answers
-- (spec/support/answers.lua: statuses, Date and Retry-After of every shape, bodies of every
-- JSON type, deep nesting, BOMs, trailing garbage, echoed secrets) go through a transport of
-- our own, into the blocking call and into jobs, under the Lua that runs the suite. For each:
-- the call returns res or nil, err and never raises; it returns within its deadline and
-- max_retry_after; the next call on the same client still works; the secret appears in no
-- result, error, log line or tostring. ITNIO_PROPERTY_SEED and ITNIO_PROPERTY_CASES vary it.
local itnio   = require "itnio"
local errors  = require "itnio.errors"
local core    = require "itnio.core"
local answers = require "support.answers"
local dump    = require("support.fixtures").dump

local SEED  = tonumber(os.getenv("ITNIO_PROPERTY_SEED") or "") or 20261124
local CASES = tonumber(os.getenv("ITNIO_PROPERTY_CASES") or "") or 3000
local SECRET = "Pr0p/s3cret-7q"
local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }
local GOOD = { status = 200, headers = {}, body = '{"code":0,"msg":"success"}' }

-- A client whose transport answers from `queue` (then GOOD); its log lines kept in `log`.
local function client_for(gen, queue, log)
  local opts = {
    api_key = "prop-key", api_secret = SECRET, max_retries = gen:int(0, 2),
    backoff_base = 0.001, backoff_cap = 0.002, max_retry_after = gen:pick{ 0, 0.01, 1 },
    deadline = gen:pick{ 0.05, 0.2, 1 },
    logger = function(level, message, fields)
      log[#log + 1] = level .. " " .. message .. " " .. dump(fields)
    end,
    transport = function()
      local a = table.remove(queue, 1)
      if not a then return GOOD end
      return { status = a.status, headers = a.headers, body = a.body }
    end,
  }
  return assert(itnio.new(opts)), opts
end

local function check_outcome(what, ok, res, err, log, took, opts)
  assert(ok, what .. ": the call raised: " .. tostring(res))
  assert(res ~= nil or err ~= nil, what .. ": neither res nor err")
  if res then
    assert(res.code == 0, what .. ": a result whose code is not 0")
  else
    assert(type(err) == "table" and type(err.kind) == "string" and errors[err.kind] ~= nil,
      what .. ": not a typed error: " .. dump(err))
    assert(not tostring(err):find("\n"), what .. ": tostring(err) is not one line")
    local code = err.code
    assert(code == nil or (type(code) == "number" and code == math.floor(code) and math.abs(code) < 2 ^ 53),
      what .. ": a code that is not a whole number: " .. tostring(code))
  end
  local seen = dump(res) .. dump(err) .. tostring(err) .. table.concat(log, "\n")
  assert(not seen:find(SECRET, 1, true), what .. ": the secret shows: " .. seen:sub(1, 300))
  -- within the deadline (plus a scheduler's slack), and never a Retry-After past max_retry_after
  assert(took <= opts.deadline + 0.5, what .. ": took " .. took .. " s with a deadline of " .. opts.deadline)
end

describe("property: whatever the server sends, a call returns", function()
  it(("blocking calls, %d generated answers (seed %d)"):format(CASES, SEED), function()
    local gen = answers.new(SEED, SECRET)
    for i = 1, CASES do
      local queue, log = {}, {}
      for j = 1, 3 do queue[j] = gen:answer() end
      local what = ("case %d (%s)"):format(i, queue[1].what)
      local c, opts = client_for(gen, queue, log)
      local t0 = core.now()
      local ok, res, err = pcall(c.recall_update, c, TASK)
      check_outcome(what, ok, res, err, log, core.now() - t0, opts)
      -- the same client still works afterwards (its skew offset included)
      queue[1], queue[2], queue[3] = nil, nil, nil
      local ok2, res2, err2 = pcall(c.recall_update, c, TASK)
      assert(ok2 and res2, what .. ": the next call failed: " .. tostring(res2) .. " " .. tostring(err2))
      assert(c:prepare_recall_update(TASK).headers.Timestamp:match("^%d+$"), what .. ": a bad Timestamp")
    end
  end)

  it(("the fast path agrees with the decision on %d generated bodies (seed %d)")
    :format(CASES, SEED + 2), function()
    -- An answer that the core takes for a plain success (and hands over without its body) must
    -- be one the Lua decision takes for the same success, message and all.
    local gen = answers.new(SEED + 2, SECRET)
    local classifier = assert(itnio.new{ api_key = "prop-key", api_secret = SECRET })
    local plain_seen = 0
    for i = 1, CASES do
      local a = gen:answer()
      local plain, msg = core.plain_success(200, a.body)
      if plain then
        plain_seen = plain_seen + 1
        local res = require("itnio.internal.outcome").classify({ client = classifier, attempt = 1 },
                                                               { status = 200, headers = {}, body = a.body })
        local want = (msg or "success"):gsub(SECRET:gsub("%p", "%%%0"), "<redacted>")   -- (redacted)
        assert(res and res.code == 0 and res.data == nil and res.message == want,
          ("case %d (%s): fast %s, classify %s"):format(i, a.what, tostring(msg), dump(res)))
      end
    end
    for _, body in ipairs{ '{"code":0,"msg":"success","data":null}', ' { "data" : null , "code" : "0" } ',
                           '{"msg":"ok","code":0}' } do
      assert.is_true(core.plain_success(200, body), body)
    end
    for _, body in ipairs{ '{"code":0,"data":{}}', '{"code":0,"msg":"a\\nb"}', '{"code":0,"code":0}',
                           '{"code":01}', '{"code":0,"status":1}', '{"code":0} x', '[0]' } do
      assert.is_false(core.plain_success(200, body), body)
    end
    assert.is_false(core.plain_success(201, '{"code":0}'))
    assert.is_true(plain_seen > 0, "no generated answer was a plain success")
  end)

  it(("jobs, %d generated answers (seed %d)"):format(math.floor(CASES / 3), SEED + 1), function()
    local gen = answers.new(SEED + 1, SECRET)
    for i = 1, math.floor(CASES / 3) do
      local queue, log = {}, {}
      for j = 1, 3 do queue[j] = gen:answer() end
      local what = ("job case %d (%s)"):format(i, queue[1].what)
      local c, opts = client_for(gen, queue, log)
      local t0 = core.now()
      local ok, job = pcall(c.start_recall_update, c, TASK)
      assert(ok and job, what .. ": start failed: " .. tostring(job))
      local polled = pcall(function() while c:poll(0.01) > 0 do end end)
      assert(polled, what .. ": poll raised")
      local res, err = job:result()
      check_outcome(what, true, res, err, log, core.now() - t0, opts)
    end
  end)
end)
