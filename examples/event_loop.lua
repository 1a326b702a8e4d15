-- Updates a few recall tasks from a plain Lua loop, the way a host with its own frame loop
-- would (a game engine, a GUI toolkit's idle callback, a simulation): start_recall_update
-- queues the updates, client:poll(0) once a frame advances them without waiting, on_done
-- reports each result as it arrives. From the repository root, after `make build`:
--   ITNIO_BASE_URL=http://127.0.0.1:18080 ITNIO_API_KEY=... ITNIO_API_SECRET=... \
--   lua5.4 -e 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path' \
--     -e 'package.cpath = "build/lua5.4/?.so;" .. package.cpath' examples/event_loop.lua
-- Settings: ITNIO_BASE_URL, ITNIO_API_KEY, ITNIO_API_SECRET, ITNIO_KEY_ID (299),
-- ITNIO_UPDATES (how many updates, 5). Exits 0 when every update succeeded, 1 otherwise.
local itnio = require "itnio"
local core  = require "itnio.core"   -- core.now() (monotonic seconds), core.sleep(seconds)

local FPS, LIMIT = 60, 30   -- frames a second; seconds before giving up on what still runs

local client, err = itnio.new{
  api_key    = os.getenv("ITNIO_API_KEY") or "sandbox-key",
  api_secret = os.getenv("ITNIO_API_SECRET") or "sandbox-secret",
  base_url   = os.getenv("ITNIO_BASE_URL") or "http://127.0.0.1:18080",
}
if not client then
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end

local frame, n, ok = 0, tonumber(os.getenv("ITNIO_UPDATES") or "5"), 0
local jobs = {}
for i = 1, n do
  local task = { keyId = tonumber(os.getenv("ITNIO_KEY_ID") or "299"), recallType = 0,
    recallInterval = 30, recallNum = 1,
    nodeList = { { source = 3, lan = "en-US", text = "Hello from an event loop, update " .. i,
                   hangUpSms = 0, toSeat = 0 } } }
  local job, why = client:start_recall_update(task, { on_done = function(res, e)
    if res then
      ok = ok + 1
      print(("update %d: ok, code %d after %d attempt(s), frame %d"):format(i, res.code, res.attempts, frame))
    else
      print(("update %d: failed after %d attempt(s), frame %d: %s")
        :format(i, e.attempts or 0, frame, tostring(e)))
    end
  end })
  if not job then print(("update %d: not sent: %s"):format(i, tostring(why))) end
  jobs[i] = job
end

-- The loop: one poll(0) a frame, then sleep what is left of the frame.
local start = core.now()
local next_frame = start
while client:poll(0) > 0 do
  frame = frame + 1
  -- ... the host's own work for this frame ...
  if core.now() - start > LIMIT then
    for _, job in pairs(jobs) do job:cancel() end   -- their on_done runs in the next poll
  end
  next_frame = next_frame + 1 / FPS
  local left = next_frame - core.now()
  if left > 0 then core.sleep(left) else next_frame = core.now() end
end

print(("%d of %d updates succeeded in %d frames (%.2f s)"):format(ok, n, frame, core.now() - start))
os.exit(ok == n and 0 or 1)
