-- Cases that run inside an nginx worker (spec/ngx_spec.lua drives them over HTTP).
-- GET /case/<name>?base=<url>&key=..&secret=..&<client options>  ->  JSON of what happened.
local itnio = require "itnio"
local cjson = require "cjson.safe"

local M = {}

local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
  nodeList = { { source = 3, text = "From inside nginx", lan = "en-US", hangUpSms = 0, toSeat = 0 } } }

local NUMBERS = { "timeout", "connect_timeout", "max_retries", "backoff_base", "backoff_cap",
                  "deadline", "max_body",
                  "rate", "burst" }

local function client(args)
  local opts = { api_key = args.key, api_secret = args.secret, base_url = args.base,
                 backoff_base = 0.01, backoff_cap = 0.05 }
  for _, n in ipairs(NUMBERS) do if args[n] then opts[n] = tonumber(args[n]) end end
  if args.transport then opts.transport = args.transport end
  if args.insecure == "1" then opts.insecure = true end
  opts.logger = function() end
  return assert(itnio.new(opts))
end

local function outcome(c, res, err)
  if res then
    return { ok = true, code = res.code, message = res.message, attempts = res.attempts,
             transport = c.transport_name, waited = res.waited }
  end
  return { ok = false, kind = err.kind, code = err.code, message = err.message, reason = err.reason,
           attempts = err.attempts, retryable = err.retryable, sent = err.sent,
           http_status = err.http_status, transport = c.transport_name, waited = err.waited }
end

local cases = {}

-- The modules an nginx worker of this server has loaded, after a client made and a call.
function cases.loaded(args)
  local c = client(args)
  local res, err = c:recall_update(TASK)
  local names = {}
  for name in pairs(package.loaded) do
    if name:find("^itnio") then names[#names + 1] = name end
  end
  table.sort(names)
  return { ok = res ~= nil, err = err and err.message, modules = names }
end

-- One update, in the request's own phase (content).
function cases.update(args)
  local c = client(args)
  local t = TASK
  if args.keyId then
    t = {}
    for k, v in pairs(TASK) do t[k] = v end
    t.keyId = tonumber(args.keyId)
  end
  return outcome(c, c:recall_update(t))
end

-- Several updates on one client in one request: the pool should give one connection.
-- With took=1: { took = seconds, results = ... }.
function cases.several(args)
  local c = client(args)
  local out = {}
  ngx.update_time()
  local t0 = ngx.now()
  for i = 1, tonumber(args.n or 3) do out[i] = outcome(c, c:recall_update(TASK)) end
  ngx.update_time()
  if args.took then return { took = ngx.now() - t0, results = out } end
  return out
end

-- The same, from a timer (ngx.timer.at): cosockets work there too.
function cases.timer(args)
  local dict = ngx.shared.itnio_spec
  local id = tostring(ngx.now()) .. tostring(math.random())
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return end
    local c = client(args)
    dict:set(id, cjson.encode(outcome(c, c:recall_update(TASK))))
  end)
  if not ok then return { ok = false, message = "timer: " .. tostring(err) } end
  for _ = 1, 200 do
    local v = dict:get(id)
    if v then return cjson.decode(v) end
    ngx.sleep(0.025)
  end
  return { ok = false, message = "the timer gave no result within 5 s" }
end

-- A batch on light threads: ?n=tasks&concurrency=c&bad=<index of a task that breaks a rule>
-- &retry_budget=r. Returns the outcomes in order, the seconds it took and how many ran at once.
function cases.batch(args)
  local c = client(args)
  local tasks = {}
  for i = 1, tonumber(args.n or 10) do tasks[i] = TASK end
  if args.bad then tasks[tonumber(args.bad)] = { keyId = 299, recallType = 7 } end
  local t0 = ngx.now()
  ngx.update_time()
  local calls, events = 0, {}
  c.config.on_call = function(ev) events[#events + 1] = ev.outcome end
  local results = c:batch_recall_update(tasks, { concurrency = tonumber(args.concurrency or 16),
    retry_budget = tonumber(args.retry_budget), on_done = function() calls = calls + 1 end })
  ngx.update_time()
  local out = { seconds = ngx.now() - t0, on_done_calls = calls, on_call = events, results = {} }
  for i, r in ipairs(results) do out.results[i] = outcome(c, r.res, r.err) end
  return out
end

-- The transport itself, with the method the request names: GET the sandbox's stats, then a
-- method it must refuse.
function cases.method(args)
  local t = require("itnio.internal.cosocket").new{ max_body = 65536 }
  local resp, err = t:send("GET", args.base .. "/sandbox/stats", {}, nil, 2)
  local _, put_err = t:send("PUT", args.base .. "/sandbox/stats", {}, "", 2)
  return { status = resp and resp.status, body = resp and resp.body, err = err and err.message,
           put = put_err and put_err.message }
end

-- Two calls on one client: the answer under test, then one that must still work. With the
-- log lines the client wrote, and the first call's seconds.
function cases.twice(args)
  local log = {}
  local c = client(args)
  c.config.logger = function(level, message, fields)
    local parts = { level, message }
    for k, v in pairs(fields or {}) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
    log[#log + 1] = table.concat(parts, " ")
  end
  ngx.update_time()
  local t0 = ngx.now()
  local ok, res, err = pcall(c.recall_update, c, TASK)
  ngx.update_time()
  local took = ngx.now() - t0
  local first = ok and outcome(c, res, err) or { raised = tostring(res) }
  first.text = ok and (res and cjson.encode(res) or tostring(err)) or nil
  local ok2, res2, err2 = pcall(c.recall_update, c, TASK)
  local second = ok2 and outcome(c, res2, err2) or { raised = tostring(res2) }
  return { first = first, second = second, log = table.concat(log, "\n"), seconds = took }
end

function M.run()
  local name = ngx.var.uri:match("^/case/([%w_]+)$")
  local f = name and cases[name]
  ngx.header["Content-Type"] = "application/json"
  if not f then ngx.status = 404; return ngx.say('{"error":"no such case"}') end
  local ok, result = pcall(f, ngx.req.get_uri_args())
  if not ok then ngx.status = 500; result = { raised = tostring(result) } end
  ngx.say(cjson.encode(result))
end

-- One client per worker, as examples/openresty keeps it: first used where cosockets exist.
local shared
function cases.shared(args)
  shared = shared or client(args)
  return outcome(shared, shared:recall_update(TASK))
end

-- A phase without cosockets: the call must fail with a clear error, never block or raise.
-- ?shared=1 uses the worker's client, whose transport was already chosen in a content phase.
function M.header_filter()
  local args = ngx.req.get_uri_args()
  local c = (args.shared == "1" and shared) or client(args)
  local res, err = c:recall_update(TASK)
  ngx.header["X-Itnio-Result"] = res and "ok"
    or (err.kind .. "|" .. tostring(err.reason) .. "|" .. err.message)
end

return M
