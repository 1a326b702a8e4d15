-- What a list of arrival times (the sandbox's GET /sandbox/arrivals, in order) says of a
-- rate: the most in any window, and the rate over the whole.
--
--   local arrivals = require "support.arrivals"
--   arrivals.most_within(times, 1)   -- the most arrivals in any window of 1 s
--   arrivals.rate(times)             -- arrivals a second, first to last
local A = {}

-- The most arrivals in any half-open window [t, t + w), t anything (times ascending).
function A.most_within(times, w)
  local most, j = 0, 1
  for i = 1, #times do
    while times[i] - times[j] >= w do j = j + 1 end
    if i - j + 1 > most then most = i - j + 1 end
  end
  return most
end

-- The rate from the first arrival to the last: (n - 1) / their span.
function A.rate(times)
  if #times < 2 then return 0 end
  return (#times - 1) / (times[#times] - times[1])
end

return A
