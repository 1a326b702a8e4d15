--- Private to lua-itnio. The account's secret, and the one thing made of it: the signature of
-- the current second. The secret lives here, keyed by client, in no table a caller can
-- reach: dumping a client, a job or an error (inspect(), a debug print) cannot show it. What
-- leaves the process is redacted here.
--
--     secrets.keep(client, secret)
--     local sig = secrets.signature(client, sec)   -- { sec, ts, lines }: shared, read only
--     s = secrets.redact(client, s)                -- every copy of the secret -> "<redacted>"
local core = require "itnio.core"

local type, pairs, setmetatable = type, pairs, setmetatable
local sub, find, format = string.sub, string.find, string.format

local _M = {}

local CONTENT_TYPE = "application/json;charset=UTF-8"
_M.CONTENT_TYPE = CONTENT_TYPE
_M.REDACTED = "<redacted>"

local secret_of = setmetatable({}, { __mode = "k" })
-- The signature of the last second, per client (out of the client table too).
local signature_of = setmetatable({}, { __mode = "k" })
-- The last header block (and message) found free of the secret, per client: a plain
-- success's block is the same string from one answer to the next (the core hands the same one
-- out again), and its message too ("success").
local clean_head = setmetatable({}, { __mode = "k" })
local clean_message = setmetatable({}, { __mode = "k" })

--- Keeps the client's secret where only signing and redaction read it.
-- @tparam table client the client
-- @tparam string secret the account's secret
function _M.keep(client, secret)
  secret_of[client] = secret
end

--- Whether s holds the client's secret.
-- @tparam table client the client
-- @param s a string (anything else holds nothing)
function _M.holds(client, s)
  local secret = secret_of[client]
  return secret ~= nil and type(s) == "string" and find(s, secret, 1, true) ~= nil
end

--- s with every copy of the client's secret replaced by "<redacted>".
-- @tparam table client the client
-- @param s a string (anything else is returned as it is)
function _M.redact(client, s)
  local secret = secret_of[client]
  if type(s) ~= "string" or not secret then return s end
  local i = find(s, secret, 1, true)
  while i do
    s = sub(s, 1, i - 1) .. "<redacted>" .. sub(s, i + #secret)
    i = find(s, secret, i + 10, true)
  end
  return s
end

--- v with the secret redacted in every string, keys included (a decoded answer: a tree).
-- @tparam table client the client
-- @param v any value
-- @tparam[opt=0] int depth how deep v is already
function _M.redact_tree(client, v, depth)
  depth = depth or 0
  if type(v) == "string" then return _M.redact(client, v) end
  if type(v) ~= "table" or depth > 1000 then return v end
  local moved
  for k, x in pairs(v) do
    local nk, nx = _M.redact_tree(client, k, depth + 1), _M.redact_tree(client, x, depth + 1)
    if nk ~= k then moved = moved or {}; moved[#moved + 1] = { k, nk, nx }
    elseif nx ~= x then v[k] = nx end
  end
  if moved then
    for i = 1, #moved do v[moved[i][1]] = nil end
    for i = 1, #moved do v[moved[i][2]] = moved[i][3] end
  end
  return v
end

-- s, redacted when it holds the secret; the last clean one is remembered in clean, so the
-- same text again (every plain success's) is not searched again.
local function redact_remembered(clean, client, s)
  if clean[client] == s then return s end
  if _M.holds(client, s) then return _M.redact(client, s) end
  clean[client] = s
  return s
end

--- A plain success's raw header block, redacted when it holds the secret.
-- @tparam table client the client
-- @tparam string head the raw block
function _M.redact_head(client, head)
  return redact_remembered(clean_head, client, head)
end

--- A message, redacted when it holds the secret.
-- @tparam table client the client
-- @tparam string msg the message
function _M.redact_message(client, msg)
  return redact_remembered(clean_message, client, msg)
end

--- The request headers of a Timestamp, as a table (a dry run's; a transport function of the
-- caller's gets the same).
-- @tparam table client the client
-- @tparam string ts the Timestamp
-- @tparam string sign the Sign (or "<redacted>")
function _M.headers(client, ts, sign)
  return { ["Content-Type"] = CONTENT_TYPE, ["Api-Key"] = client.api_key, Timestamp = ts, Sign = sign }
end

--- The signature of second `sec` on the client's clock: { sec, ts, lines } (lines: the
-- request's header lines, as libcurl takes them). Shared and read only: the Timestamp has
-- whole seconds, so it is made once a second per client.
-- @tparam table client the client
-- @tparam int sec the second (Unix time, skew fixed)
function _M.signature(client, sec)
  local sig = signature_of[client]
  if sig and sig.sec == sec then return sig end
  local ts = format("%d", sec)
  local sign = core.sign(client.api_key, secret_of[client], ts)
  sig = { sec = sec, ts = ts, lines = { "Content-Type: " .. CONTENT_TYPE, "Api-Key: " .. client.api_key,
                                        "Timestamp: " .. ts, "Sign: " .. sign } }
  signature_of[client] = sig
  return sig
end

return _M
