--- Test helpers for your own code: a vendor double that needs no nginx.
--
--     local itnio = require "itnio"
--     local transport, vendor = itnio.testing.vendor{ api_key = "k",
--                                                     api_secret = "s" }
--     local client = itnio.new{ api_key = "k", api_secret = "s",
--                               transport = transport }
--     vendor.fault{ kind = "status", status = 503, count = 1 }
--     local res = client:recall_update(task)     -- a 503, then the retry succeeds
--     assert(vendor.task(299).task.nodeList[1].text == task.nodeList[1].text)
--
-- The transport plays the vendor in this process with the very emulation the sandbox serves
-- from nginx: Api-Key, Sign and the Timestamp window (-16), the IP
-- allow-list (-2), every rule by the core (-22), edits to Pending tasks only, the stored
-- tasks; and the same faults, scripted with `vendor.fault`. It starts with the sandbox's
-- tasks: 299 and 301 Pending, 300 Running.
-- @module itnio.testing
local vendor    = require "itnio.testing.internal.vendor"
local core      = require "itnio.core"
local cjson     = require("cjson.safe").new()

local type, tostring, pairs, ipairs, error, pcall = type, tostring, pairs, ipairs, error, pcall
local concat, lower, format = table.concat, string.lower, string.format

local _M = {}

local by_path = {}   -- the endpoints the core knows, by their path
for _, e in ipairs(core.endpoints()) do by_path[e.path] = e end

-- null -> nil, deeply (a stored task as a plain Lua table).
local function denull(v)
  if v == cjson.null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denull(x) end
  end
  return v
end

--- A vendor double: a transport function for `itnio.new{ transport = ... }`, and its control.
-- opts: `api_key`, `api_secret` (the account it accepts), `allow_ips` (a list, or a string
-- of them with commas: the addresses it accepts; `{"*"}` for any; default the loopback),
-- `remote_addr` (the address requests come from, "127.0.0.1"), `tasks` (the tasks it starts
-- with, `{ {id = 299, status = "Pending"}, ... }`), `window` (seconds a Timestamp may be off,
-- 300), `skew` (seconds its clock is ahead, 0).
--
-- The control: `fault(f)` queues a fault, in the table form of the sandbox's
-- `POST /sandbox/faults` body (`{ kind = "status", status = 503, count = 1 }`; kinds delay,
-- status, code, answer, reset; raises on one that is none); `task(keyId)` the stored task
-- `{ keyId, status, updates, updated_at, task }` or nil; `set_task(keyId, status)`;
-- `requests()` the requests seen, `{ method, url, path, headers, body }` each; `stats()`
-- `{ requests, connections, accepted }`; `arrivals()` when each request arrived (seconds);
-- `reset()` back to its first tasks, no faults, nothing seen. A delay longer than the
-- request's timeout ends it as a `timeout` (after that long); a reset as a `reset`.
-- @tparam table opts the options
-- @treturn function the transport
-- @treturn table the control
function _M.vendor(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'vendor' (table expected)", 2) end
  for _, k in ipairs{ "api_key", "api_secret" } do
    if type(opts[k]) ~= "string" or opts[k] == "" then
      error("bad argument #1 to 'vendor' (" .. k .. " must be a non-empty string)", 2)
    end
  end
  local allow = opts.allow_ips or "127.0.0.1,::1"
  if type(allow) == "table" then allow = concat(allow, ",") end
  local remote = opts.remote_addr or "127.0.0.1"
  local v = vendor.new{ key = opts.api_key, secret = opts.api_secret, window = opts.window,
    skew = opts.skew, allow_ip = allow, tasks = opts.tasks, store = vendor.memory(),
    clock = core.time, sign = function(key, secret, ts)
      local ok, sign = pcall(core.sign, key, secret, ts)   -- (a key the core refuses matches nothing)
      return ok and sign or ""
    end }
  v:reset()
  local seen = {}

  local function transport(req)
    local path = req.url:match("^%a+://[^/]*(/[^?#]*)") or "/"
    local headers = {}
    for k, x in pairs(req.headers or {}) do headers[k] = x end
    seen[#seen + 1] = { method = req.method, url = req.url, path = path, headers = headers, body = req.body }
    local e = by_path[path]
    if not e then
      return { status = 404, headers = { ["content-type"] = "application/json" },
               body = '{"error":"not found"}\n' }
    end
    local reply = v:handle(e.name, { method = req.method, remote_addr = remote, connection = 1,
                                     headers = headers, body = req.body })
    local delay = reply.delay or 0
    if delay > 0 then
      local timeout = req.timeout or 10
      if delay >= timeout then
        core.sleep(timeout)
        return nil, { reason = "timeout", sent = true,
                      message = format("no answer in %gs (the vendor double's delay fault)", timeout) }
      end
      core.sleep(delay)
    end
    if reply.reset then
      return nil, { reason = "reset", sent = true,
                    message = "the connection was reset (the vendor double's reset fault)" }
    end
    local h = { ["content-type"] = reply.ctype, date = vendor.http_date(v:now()) }
    for k, x in pairs(reply.headers or {}) do h[lower(k)] = tostring(x) end
    return { status = reply.status, headers = h, body = reply.body, reused = #seen > 1 }
  end

  local function control_fault(f)
    local n, why = v:push_faults(f)
    if not n then error("itnio.testing: " .. why, 2) end
    return n
  end
  local function control_task(id)
    local text = v:task_json(vendor.id_string(id))
    return text and denull(cjson.decode(text)) or nil
  end
  local function control_set_task(id, status) return v:set_task(id, status) end
  local function control_requests()
    local copy = {}
    for i, r in ipairs(seen) do copy[i] = r end
    return copy
  end
  local function control_stats() return v:stats() end
  local function control_arrivals() return v:arrivals() end
  local function control_reset()
    v:reset()
    seen = {}
  end
  local control = { fault = control_fault, task = control_task, set_task = control_set_task,
                    requests = control_requests, stats = control_stats, reset = control_reset,
                    arrivals = control_arrivals }
  return transport, control
end

return _M
