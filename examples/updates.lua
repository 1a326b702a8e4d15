-- What examples/luv.lua, examples/cqueues.lua and examples/neovim.lua share: the client, from
-- the environment, and the updates it starts, each reported as it ends. The loops are the
-- examples' own.
--   local updates = dofile("examples/updates.lua")
--   local run = updates.start()   -- the client made, ITNIO_UPDATES jobs started
--   ... drive run.client in the host's loop until run:finished() ...
--   os.exit(run:report())          -- prints the summary; 0 when every update succeeded
-- Settings: ITNIO_BASE_URL, ITNIO_API_KEY, ITNIO_API_SECRET, ITNIO_KEY_ID (299),
-- ITNIO_UPDATES (how many updates, 5), ITNIO_DEADLINE (seconds for each update; none).
local itnio = require "itnio"

local M = {}

-- One line on standard output, at once (Neovim's print goes to its messages instead).
local function say(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

local Run = {}
Run.__index = Run

function M.start()
  local client = assert(itnio.new{
    api_key    = os.getenv("ITNIO_API_KEY") or "sandbox-key",
    api_secret = os.getenv("ITNIO_API_SECRET") or "sandbox-secret",
    base_url   = os.getenv("ITNIO_BASE_URL") or "http://127.0.0.1:18080",
  })
  local self = setmetatable({ client = client, n = tonumber(os.getenv("ITNIO_UPDATES") or "5"),
                              ended = 0, ok = 0, t0 = os.time(), cpu0 = os.clock() }, Run)
  self.clock = require("itnio.core").now
  self.start_t = self.clock()
  local deadline = tonumber(os.getenv("ITNIO_DEADLINE") or "")
  for i = 1, self.n do
    local task = { keyId = tonumber(os.getenv("ITNIO_KEY_ID") or "299"), recallType = 0,
      recallInterval = 30, recallNum = 1,
      nodeList = { { source = 3, lan = "en-US", text = "Hello from a host's event loop, update " .. i,
                     hangUpSms = 0, toSeat = 0 } } }
    assert(client:start_recall_update(task, { deadline = deadline, on_done = function(res, err)
      local took = self.clock() - self.start_t
      self.ended = self.ended + 1
      if res then
        self.ok = self.ok + 1
        say(("update %d: ok after %d attempt(s), %.2f s"):format(i, res.attempts, took))
      else
        say(("update %d: failed (%s) after %.2f s: %s"):format(i, tostring(err.reason or err.kind), took,
                                                                 tostring(err)))
      end
    end }))
  end
  return self
end

-- Whether every update has ended.
function Run:finished()
  return self.ended == self.n
end

-- Prints the summary (with the CPU time the process spent against the time it took); the
-- exit status: 0 when every update succeeded.
function Run:report()
  local wall, cpu = self.clock() - self.start_t, os.clock() - self.cpu0
  say(("%d of %d updates succeeded in %.2f s, %.3f s of CPU"):format(self.ok, self.n, wall, cpu))
  self.client:close()
  return self.ok == self.n and 0 or 1
end

return M
