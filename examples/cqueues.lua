-- Jobs driven by cqueues (lua-http and other cqueues daemons): the client is a pollable
-- object (pollfd, events, timeout), so cqueues.poll(client) sleeps in the controller until
-- it has something to do, beside every other coroutine of the daemon. From the repository
-- root, after `make build`, against a sandbox:
--   ITNIO_BASE_URL=http://127.0.0.1:18080 lua5.4 -e 'package.path = "lua/?.lua;lua/?/init.lua;" ..
--     package.path; package.cpath = "build/lua5.4/?.so;" .. package.cpath' examples/cqueues.lua
-- Settings: as examples/updates.lua. Exits 0 when every update succeeded.
local cqueues = require "cqueues"
local run = dofile("examples/updates.lua").start()
local client = run.client

local cq = cqueues.new()
cq:wrap(function()
  client:poll(0)
  while not run:finished() do
    cqueues.poll(client)   -- until its descriptor is readable, or its timeout passes
    client:poll(0)
  end
end)
assert(cq:loop())
os.exit(run:report())
