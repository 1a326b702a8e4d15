-- Cases that run inside the workers of spec/fleet_spec.lua's nginx (4 workers, one
-- lua_shared_dict itnio_fleet). GET /fleet/<name>?base=..&key=..&secret=..&<numbers> -> JSON
-- with the worker that served it.
local itnio = require "itnio"
local cjson = require "cjson.safe"

local M = {}

local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
  nodeList = { { source = 3, text = "From a fleet", lan = "en-US", hangUpSms = 0, toSeat = 0 } } }

local function client(args)
  local opts = { api_key = args.key, api_secret = args.secret, base_url = args.base,
                 shared_dict = args.dict or "itnio_fleet", max_retries = tonumber(args.max_retries or 0),
                 backoff_base = 0.01, backoff_cap = 0.05, logger = function() end }
  if args.rate then opts.rate = tonumber(args.rate) end
  if args.failures then
    opts.breaker = { failures = tonumber(args.failures), cooldown = tonumber(args.cooldown or 30) }
  end
  return itnio.new(opts)
end

local function outcome(res, err)
  if res then return { ok = true, attempts = res.attempts } end
  return { ok = false, kind = err.kind, message = err.message, attempts = err.attempts,
           retry_after = err.retry_after }
end

local cases = {}

-- n updates, one after the other, on a client of this request.
function cases.update(args)
  local c, err = client(args)
  if not c then return { config_error = err.message } end
  local out = {}
  ngx.update_time()
  local t0 = ngx.now()
  for i = 1, tonumber(args.n or 1) do out[i] = outcome(c:recall_update(TASK)) end
  ngx.update_time()
  return { results = out, seconds = ngx.now() - t0 }
end

-- A batch of n tasks (retry_budget, max_retries from the query): the outcomes' kinds.
function cases.batch(args)
  local c = client(args)
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

function M.run()
  local name = ngx.var.uri:match("^/fleet/([%w_]+)$")
  local case = name and cases[name]
  if not case then return ngx.exit(404) end
  local r = case(ngx.req.get_uri_args())
  r.worker = ngx.worker.id()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(r))
end

return M
