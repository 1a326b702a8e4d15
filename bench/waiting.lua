-- What a host's loop spends while jobs wait, under Lua 5.4: JOBS jobs against a loopback
-- listener that never accepts (the requests sent, no answer ever), driven for SECONDS by
--   luv     a libuv loop on client:pollfd() and a timer from client:timeout() (examples/luv.lua)
--   frame   a frame loop at 60 frames a second calling client:poll(0) once a frame
-- and the process's CPU time (os.clock) over that wall time.
--
--   waiting.lua luv|frame [JOBS] [SECONDS]
--
-- Prints "waiting_result cpu_seconds wall_seconds jobs_running".
local socket = require "socket"
local core   = require "itnio.core"
local new_task = require "task"

local mode, jobs, seconds = arg[1], tonumber(arg[2] or "100"), tonumber(arg[3] or "2")
assert(mode == "luv" or mode == "frame", "usage: waiting.lua luv|frame [JOBS] [SECONDS]")

local listener = assert(socket.tcp())
assert(listener:bind("127.0.0.1", 0))
assert(listener:listen(jobs + 24))
local _, port = listener:getsockname()

local client = assert(require("itnio").new{ api_key = "k", api_secret = "s", max_retries = 0,
  base_url = "http://127.0.0.1:" .. port, timeout = seconds + 30 })
local task = new_task()
for _ = 1, jobs do assert(client:start_recall_update(task)) end
-- the jobs sent and waiting before the clock starts
local t_end = core.now() + 1
while core.now() < t_end do client:poll(0); core.sleep(0.01) end

local t0, c0 = core.now(), os.clock()
if mode == "luv" then
  local uv = require "luv"
  local poll, timer = uv.new_poll(assert(client:pollfd())), uv.new_timer()
  local stop = uv.new_timer()
  local function drive()
    client:poll(0)
    timer:stop()
    local s = client:timeout()
    if s then timer:start(math.ceil(s * 1000), 0, drive) end
  end
  poll:start("r", drive)
  stop:start(math.floor(seconds * 1000), 0, function()
    poll:close(); timer:close(); stop:close()
  end)
  drive()
  uv.run()
else
  local frame = 1 / 60
  local next_frame = t0
  while core.now() - t0 < seconds do
    client:poll(0)
    next_frame = next_frame + frame
    local left = next_frame - core.now()
    if left > 0 then core.sleep(left) end
  end
end
local cpu, wall = os.clock() - c0, core.now() - t0
print(("waiting_result %.6f %.6f %d"):format(cpu, wall, client:poll(0)))
client:close()
listener:close()
