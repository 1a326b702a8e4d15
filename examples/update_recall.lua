-- Edit auto-recall task 299: a text-to-speech node that sends an SMS when the call succeeds.
-- Credentials and server come from the environment; unset, they are the sandbox's
-- (`bin/itnio-sandbox start` prints its URLs; `make demo` runs this against it).
--   ITNIO_API_KEY, ITNIO_API_SECRET, ITNIO_BASE_URL, ITNIO_CAFILE (a CA file for HTTPS)
local itnio = require "itnio"

local client, err = itnio.new{
  api_key    = os.getenv("ITNIO_API_KEY") or "sandbox-key",
  api_secret = os.getenv("ITNIO_API_SECRET") or "sandbox-secret",
  base_url   = os.getenv("ITNIO_BASE_URL") or "http://127.0.0.1:18080",
  cafile     = os.getenv("ITNIO_CAFILE"),
  timeout = 10, max_retries = 2,
}
if not client then
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end

local res
res, err = client:recall_update{
  keyId = tonumber(os.getenv("ITNIO_KEY_ID") or "299"),
  recallType = 1, recallInterval = 30, recallNum = 2,
  nodeList = {
    { source = 3, lan = "en-US", text = "Hello, this is a reminder about your delivery.",
      speakingRate = 1.0, hangUpSms = 1, successPush = 1, successPushTime = 10,
      smsContent = "Hi ${text1}, your parcel arrives ${text2}.", toSeat = 0 },
  },
}
if not res then
  io.stderr:write("update failed: ", tostring(err), "\n")
  os.exit(1)
end
print(("updated task: code %d (%s) after %d attempt(s), HTTP %d")
  :format(res.code, res.message, res.attempts, res.http_status))
