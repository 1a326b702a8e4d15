-- Cases that run inside the workers of a fleet spec's nginx (spec/fleet_spec.lua: 4 workers,
-- one lua_shared_dict itnio_fleet; spec/fleet_store_spec.lua: several nginx, a store), or in
-- a plain Lua process (spec/support/fleet_process.lua). Each takes the arguments of a query
-- (base, key, secret, and numbers, as strings) and answers a table, which nginx sends as
-- JSON: GET /fleet/<name>?base=..&key=..&secret=..&... -> {..., "worker": id}.
local itnio = require "itnio"
local core  = require "itnio.core"
local cjson = require "cjson.safe"

local M = {}

local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
  nodeList = { { source = 3, text = "From a fleet", lan = "en-US", hangUpSms = 0, toSeat = 0 } } }

-- A client of the request's (or the process's); log: the lines its logger heard.
local function client(args, log)
  local opts = { api_key = args.key, api_secret = args.secret, base_url = args.base,
                 shared_dict = ngx and (args.dict or "itnio_fleet") or nil,
                 max_retries = tonumber(args.max_retries or 0),
                 backoff_base = 0.01, backoff_cap = 0.05,
                 logger = function(_, msg) log[#log + 1] = msg end }
  if args.rate then opts.rate = tonumber(args.rate) end
  if args.failures then
    opts.breaker = { failures = tonumber(args.failures), cooldown = tonumber(args.cooldown or 30) }
  end
  if args.store then
    opts.store = { url = args.store, timeout = tonumber(args.store_timeout or 0.1),
                   connect_timeout = tonumber(args.store_timeout or 0.1) }
  end
  return itnio.new(opts)
end

local function outcome(res, err)
  if res then return { ok = true, attempts = res.attempts } end
  return { ok = false, kind = err.kind, message = err.message, attempts = err.attempts,
           retry_after = err.retry_after }
end

local cases = {}

-- n updates, one after the other, on a client of this request (or, with seconds, as many as
-- that many seconds take): their outcomes, the longest one, and what the logger heard.
function cases.update(args)
  local log = {}
  local c, err = client(args, log)
  if not c then return { config_error = err.message } end
  local out, longest = {}, 0
  local t0 = core.now()
  local n, seconds = tonumber(args.n or 1), tonumber(args.seconds)
  local i = 0
  while (seconds and core.now() - t0 < seconds) or (not seconds and i < n) do
    i = i + 1
    local s = core.now()
    out[i] = outcome(c:recall_update(TASK))
    longest = math.max(longest, core.now() - s)
  end
  return { results = out, seconds = core.now() - t0, longest = longest, log = log }
end

-- A batch of n tasks (retry_budget, max_retries from the query): the outcomes' kinds.
function cases.batch(args)
  local c = client(args, {})
  local tasks = {}
  for i = 1, tonumber(args.n or 4) do tasks[i] = TASK end
  local kinds = {}
  for i, r in ipairs(c:batch_recall_update(tasks, { concurrency = 2,
                                                    retry_budget = tonumber(args.retry_budget) })) do
    kinds[i] = r.res and "ok" or r.err.kind
  end
  return { kinds = kinds }
end

-- Empties the shared dict (each spec starts from nothing learnt).
function cases.flush()
  ngx.shared.itnio_fleet:flush_all()
  return {}
end

-- The keys of the shared dict.
function cases.keys()
  return { keys = ngx.shared.itnio_fleet:get_keys(0) }
end

-- Inside nginx: the case the URI names, its answer as JSON with the worker's id.
function M.run()
  local name = ngx.var.uri:match("^/fleet/([%w_]+)$")
  local case = name and cases[name]
  if not case then return ngx.exit(404) end
  local r = case(ngx.req.get_uri_args())
  r.worker = ngx.worker.id()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(r))
end

-- In a plain Lua process: argv is the case's name, then key=value arguments; prints the
-- answer as JSON.
function M.main(argv)
  local args = {}
  for i = 2, #argv do
    local k, v = argv[i]:match("^([%w_]+)=(.*)$")
    args[k] = v
  end
  local r = cases[argv[1]](args)
  r.worker = "process"
  io.write(cjson.encode(r), "\n")
end

return M
