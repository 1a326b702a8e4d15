-- Updates recall tasks from a LÖVE game's frame loop. client:start_recall_update queues an
-- update and returns at once; client:poll(0), called every frame from love.update, does what
-- the sockets have ready and returns: the game never waits on the network, retries included.
--
-- From the repository root, after `make LUA=luajit build`:
--   ITNIO_BASE_URL=http://127.0.0.1:18080 ITNIO_API_KEY=... ITNIO_API_SECRET=... \
--   SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy love examples/love
-- Settings: ITNIO_BASE_URL, ITNIO_API_KEY, ITNIO_API_SECRET, ITNIO_KEY_ID (299),
-- ITNIO_LOVE_UPDATES (how many updates, 24), ITNIO_LOVE_REPORT (a file for the report;
-- stdout when unset). Exits 0 when every update succeeded, 1 otherwise.
-- luacheck: globals love

-- LÖVE's require looks inside the game first; the module lives in this checkout (two levels up).
local root = love.filesystem.getSource() .. "/../.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath

local itnio = require "itnio"

local LIMIT = 20   -- seconds: a safety net, then the game gives up on what still runs

local client
local jobs = {}    -- { started = t, ended = t, res = res, err = err }, one per update
local frames, max_poll, t0, finished = 0, 0, nil, false

local function task(i)
  return { keyId = tonumber(os.getenv("ITNIO_KEY_ID") or "299"), recallType = 0,
    recallInterval = 30, recallNum = 1,
    nodeList = { { source = 3, lan = "en-US", text = "Hello from LÖVE, update " .. i,
                   hangUpSms = 0, toSeat = 0 } } }
end

function love.load()
  local err
  client, err = itnio.new{
    api_key    = os.getenv("ITNIO_API_KEY") or "sandbox-key",
    api_secret = os.getenv("ITNIO_API_SECRET") or "sandbox-secret",
    base_url   = os.getenv("ITNIO_BASE_URL") or "http://127.0.0.1:18080",
  }
  if not client then error(tostring(err)) end
  t0 = love.timer.getTime()
  for i = 1, tonumber(os.getenv("ITNIO_LOVE_UPDATES") or "24") do
    local job = { started = love.timer.getTime() - t0 }
    jobs[i] = job
    local queued, why = client:start_recall_update(task(i), { on_done = function(res, e)
      job.ended, job.res, job.err = love.timer.getTime() - t0, res, e
    end })
    if not queued then job.ended, job.err = job.started, why end   -- a task that breaks a rule
  end
end

local function report()
  local ok, lines = 0, {}
  for i, job in ipairs(jobs) do
    if job.res then ok = ok + 1 end
    local attempts = job.res and job.res.attempts or (job.err and job.err.attempts) or 0
    lines[#lines + 1] = ("job %d %s %d %.6f %.6f%s"):format(i, job.res and "ok" or "failed",
      attempts, job.started, job.ended or -1, job.res and "" or " " .. tostring(job.err or "still running"))
  end
  table.insert(lines, 1, ("updates %d\nok %d\nfailed %d\nframes %d\nmax_poll_ms %.3f\nwall_s %.6f")
    :format(#jobs, ok, #jobs - ok, frames, max_poll * 1000, love.timer.getTime() - t0))
  local text = table.concat(lines, "\n") .. "\n"
  local path = os.getenv("ITNIO_LOVE_REPORT")
  local f = path and assert(io.open(path, "w")) or io.stdout
  f:write(text)
  if path then f:close() end
  return ok == #jobs
end

function love.update()
  if finished then return end
  frames = frames + 1
  local before = love.timer.getTime()
  local running = client:poll(0)   -- never waits on the network, nor on a retry timer
  max_poll = math.max(max_poll, love.timer.getTime() - before)
  -- ... the rest of the game's frame ...
  if running == 0 or love.timer.getTime() - t0 > LIMIT then
    finished = true
    love.event.quit(report() and 0 or 1)
  end
end

function love.draw()   -- LÖVE calls it only when graphics is on (conf.lua turns it off)
  local done = 0
  for _, job in ipairs(jobs) do if job.ended then done = done + 1 end end
  love.graphics.print(("%d of %d updates done"):format(done, #jobs), 10, 10)
end
