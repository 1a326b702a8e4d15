-- Jobs driven by a libuv loop (luv; Luvit and other luv programs work the same way): the
-- client's descriptor in a uv poll handle, and a uv timer armed from client:timeout(). The
-- loop sleeps until there is something to do: no spinning, no blocking. From the repository
-- root, after `make build`, against a sandbox:
--   ITNIO_BASE_URL=http://127.0.0.1:18080 lua5.4 -e 'package.path = "lua/?.lua;lua/?/init.lua;" ..
--     package.path; package.cpath = "build/lua5.4/?.so;" .. package.cpath' examples/luv.lua
-- Settings: as examples/updates.lua. Exits 0 when every update succeeded.
local uv = require "luv"
local run = dofile("examples/updates.lua").start()
local client = run.client

local poll = uv.new_poll(assert(client:pollfd()))   -- readable: a socket has news
local timer = uv.new_timer()                         -- due: a timer of the client's has

-- Lets the client do what is ready, then arms the timer for what is due next.
local function drive()
  client:poll(0)
  timer:stop()
  if run:finished() then
    poll:close()
    timer:close()
    return
  end
  local s = client:timeout()
  if s then timer:start(math.ceil(s * 1000), 0, drive) end
end

poll:start("r", drive)
drive()      -- (the jobs just started: timeout() is 0)
uv.run()     -- until both handles are closed
os.exit(run:report())
