-- Property, inside real nginx workers: the cosocket transport's reader, driven by a raw peer
-- (spec/support/rawserver.lua) through generated answers (spec/support/answers.lua), some of
-- them cut short, some dribbled slower than the timeout allows. For each: the call returns
-- res or nil, err and never raises; it returns within its timeout; the next call on the same
-- client works; the secret shows in no result, error or log line.
local cjson   = require "cjson"
local socket  = require "socket"
local nginx   = require "support.nginx"
local rawpeer = require "support.rawpeer"
local answers = require "support.answers"

local SEED  = tonumber(os.getenv("ITNIO_PROPERTY_SEED") or "") or 20261124
local CASES = tonumber(os.getenv("ITNIO_PROPERTY_NGX_CASES") or "") or 150
local SECRET = "Pr0p/s3cret-7q"
local GOOD = '{"code":0,"msg":"success"}'
local GOOD_RAW = "HTTP/1.1 200 OK\r\nContent-Length: " .. #GOOD .. "\r\n\r\n" .. GOOD
local TIMEOUT = 0.4

local function dump(v)
  if type(v) ~= "table" then return tostring(v) end
  local out = {}
  for k, x in pairs(v) do out[#out + 1] = dump(k) .. "=" .. dump(x) end
  return table.concat(out, " ")
end

describe("property: whatever the server sends, a call inside nginx returns", function()
  local srv, peer
  setup(function()
    srv = nginx.start{ server = [[
      location /case/ { content_by_lua_block { require("support.ngx_cases").run() } }
    ]] }
    peer = rawpeer.start(".lua")
  end)
  teardown(function()
    if peer then peer:stop() end
    if srv then srv:stop() end
  end)

  it(("reads %d generated answers (seed %d), slow and cut ones among them"):format(CASES, SEED), function()
    local gen = answers.new(SEED, SECRET)
    for i = 1, CASES do
      local a = gen:answer()
      local bytes, dribble, what = a.raw, nil, a.what
      local shape = gen:int(1, 12)
      if shape == 1 then bytes = bytes:sub(1, gen:int(0, #bytes - 1)); what = "cut: " .. what end
      if shape == 2 then dribble = 0.05; what = "dribbled: " .. what end
      peer:answer{ bytes = bytes, dribble = dribble, after = GOOD_RAW }
      local t0 = socket.gettime()
      local status, body = srv:get("/case/twice?key=prop-key&secret=" .. SECRET:gsub("/", "%%2F")
        .. "&max_retries=" .. gen:int(0, 1) .. "&timeout=" .. TIMEOUT .. "&deadline=1&backoff_base=0.001"
        .. "&base=http%3A%2F%2F127.0.0.1%3A" .. peer.port)
      local took = socket.gettime() - t0
      what = ("case %d (%s)"):format(i, what)
      assert(status == 200, what .. ": the case answered " .. tostring(status) .. ": " .. tostring(body))
      local decoded, r = pcall(cjson.decode, body)
      assert(decoded, what .. ": the case answered no JSON: " .. tostring(body):sub(1, 300))
      assert(not r.first.raised, what .. ": the call raised: " .. tostring(r.first.raised))
      assert(r.first.ok or (type(r.first.kind) == "string" and r.first.kind:find("Error$")),
        what .. ": neither a result nor a typed error: " .. body)
      assert(r.seconds <= 1 + 0.3, what .. ": the first call took " .. r.seconds .. " s (deadline 1 s)")
      assert(r.second.ok, what .. ": the next call failed: " .. body)
      local seen = dump(r)   -- decoded: an escaped copy of the secret counts too
      assert(not seen:find(SECRET, 1, true), what .. ": the secret shows: " .. seen:sub(1, 300))
      assert(took < 5, what .. ": the request took " .. took .. " s")
    end
  end)
end)
