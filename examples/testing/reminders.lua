-- A module of your own that uses lua-itnio: it re-paces the auto-recall of a parcel
-- reminder. examples/testing/reminders_spec.lua tests it against the vendor double, with no
-- network and no nginx.
local recall = require "itnio.recall"

local M = {}

--- Sets task key_id to call twice, 30 minutes apart, saying text: true, or nil and a
-- sentence for the operator (the vendor's refusal, or what to do about an outage).
function M.repace(client, key_id, text)
  local task = recall.task(key_id, { interval = 30, attempts = 2 }, { recall.tts(text, "en-US") })
  local res, err = client:recall_update(task)
  if res then return true end
  if err.retryable then
    return nil, "the vendor is not answering (" .. err.kind .. "): try again later"
  end
  return nil, "the vendor refused task " .. key_id .. ": " .. err.message
end

return M
