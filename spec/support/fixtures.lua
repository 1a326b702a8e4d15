-- Shared helpers for the itnio.core specs: fresh valid tasks and nodes, deep equality,
-- error lookup and the checks every error list must pass. Runs on Lua 5.4 and LuaJIT.
local cjson = require "cjson"

local F = {}

-- Everything a caller can see of a value, as one string (tostring of each table too, keys
-- and values, cycles cut): to search for a secret in results, errors and clients.
local function dump(v, seen)
  seen = seen or {}
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "" end
  seen[v] = true
  local out = { tostring(v) }
  for k, x in pairs(v) do out[#out + 1] = dump(k, seen) .. "=" .. dump(x, seen) end
  return table.concat(out, " ")
end
F.dump = dump

-- Put F.NONE in an override table to delete that key from the fixture.
F.NONE = setmetatable({}, { __tostring = function() return "F.NONE" end })

-- Deep copy of plain data (keeps cycles and shared tables as they are shaped).
local function copy(v, seen)
  if type(v) ~= "table" or rawequal(v, F.NONE) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local t = {}
  seen[v] = t
  for k, x in next, v do t[k] = copy(x, seen) end
  return t
end
F.copy = copy

-- Applies override tables left to right onto t (copying their table values) and returns t.
function F.merge(t, ...)
  for i = 1, select("#", ...) do
    local ov = select(i, ...)
    for k, v in pairs(ov or {}) do
      if rawequal(v, F.NONE) then t[k] = nil else t[k] = copy(v) end
    end
  end
  return t
end

-- A new table made of several override tables (later ones win).
function F.with(...)
  return F.merge({}, ...)
end

local VOICE = {
  [1] = { source = 1, voiceFileId = "vf-0001.wav", hangUpSms = 0, toSeat = 0 },
  [2] = { source = 2, uploadName = "greeting.wav", baseFile = "UklGRiQAAABXQVZF",
          hangUpSms = 0, toSeat = 0 },
  [3] = { source = 3, text = "Hello, this is a reminder.", lan = "en-US",
          hangUpSms = 0, toSeat = 0 },
}

-- A valid voice node for source 1, 2 or 3 (no SMS, no transfer), with overrides applied.
function F.voice(source, ...)
  return F.merge(copy(VOICE[source or 1]), ...)
end

-- A valid agent node (scriptId only), with overrides applied.
function F.agent(...)
  return F.merge({ scriptId = 123 }, ...)
end

-- Overrides that switch on a valid hang-up SMS / a valid transfer to an agent.
F.SMS = { hangUpSms = 1, smsContent = "Your code is ${text1}", successPush = 1,
          successPushTime = 30 }
F.SEAT = { toSeat = 1, sipGroupId = 1000038, outboundControl = 1, calloutRate = 1,
           toSeatType = 1 }

-- A valid task (one source-1 node unless the overrides set nodeList), fresh every call.
function F.task(...)
  local t = { keyId = 299, recallInterval = 30, recallNum = 1, recallType = 0,
              nodeList = { F.voice(1) } }
  return F.merge(t, ...)
end

-- A valid task whose nodeList is exactly the given nodes.
function F.task_nodes(...)
  return F.task({ nodeList = { ... } })
end

-- Deep copy without absent values (nil, cjson.null, and the optional sentinel).
function F.strip(v, sentinel)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in next, v do
    if not rawequal(x, cjson.null) and not rawequal(x, sentinel) then
      t[k] = F.strip(x, sentinel)
    end
  end
  return t
end

local function show(v)
  if type(v) == "string" then
    if #v > 60 then return string.format("%q...(%d bytes)", v:sub(1, 60), #v) end
    return string.format("%q", v)
  end
  return tostring(v)
end

-- Deep equality of plain data (metatables ignored, numbers with ==).
-- Returns true, or false and a sentence naming the first difference.
function F.deep_equal(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return false, path .. ": " .. type(a) .. " " .. show(a) .. " ~= " .. type(b) .. " " .. show(b)
  end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, path .. ": " .. show(a) .. " ~= " .. show(b)
  end
  for k, v in next, a do
    local ok, msg = F.deep_equal(v, b[k], path .. "[" .. show(k) .. "]")
    if not ok then return false, msg end
  end
  for k, v in next, b do
    if a[k] == nil then
      return false, path .. "[" .. show(k) .. "]: missing on the left, right has " .. show(v)
    end
  end
  return true
end

-- The first error with that rule id and field path, or nil.
function F.find_error(errs, rule, field)
  for _, e in ipairs(errs or {}) do
    if e.rule == rule and e.field == field then return e end
  end
  return nil
end

-- The first error with that rule id whose field starts with prefix, or nil.
function F.find_error_prefix(errs, rule, prefix)
  for _, e in ipairs(errs or {}) do
    if e.rule == rule and type(e.field) == "string"
       and e.field:sub(1, #prefix) == prefix then
      return e
    end
  end
  return nil
end

-- "T1@keyId, N11@nodeList[2].smsContent" (for assertion messages).
function F.describe_errs(errs)
  if errs == nil then return "no errors" end
  if type(errs) ~= "table" then return "errs is a " .. type(errs) end
  local parts = {}
  for i, e in ipairs(errs) do
    if i > 12 then parts[#parts + 1] = "... (" .. #errs .. " in all)"; break end
    local field = type(e.field) == "string" and e.field or tostring(e.field)
    if #field > 80 then field = field:sub(1, 80) .. "..." end
    parts[#parts + 1] = tostring(e.rule) .. "@" .. field
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- errs holds exactly the wanted {rule, field} pairs (any order, no more, no fewer).
function F.same_errors(errs, want)
  if type(errs) ~= "table" then return false, "expected errors, got " .. type(errs) end
  local left = {}
  for i, w in ipairs(want) do left[i] = w end
  local extra = {}
  for _, e in ipairs(errs) do
    local hit
    for i, w in ipairs(left) do
      if w[1] == e.rule and w[2] == e.field then hit = i; break end
    end
    if hit then table.remove(left, hit) else extra[#extra + 1] = e end
  end
  if #left == 0 and #extra == 0 then return true end
  local miss = {}
  for _, w in ipairs(left) do miss[#miss + 1] = w[1] .. "@" .. w[2] end
  return false, "missing {" .. table.concat(miss, ", ") .. "}, unexpected "
    .. F.describe_errs(extra) .. ", got " .. F.describe_errs(errs)
end

-- The last identifier in a field path: "nodeList[2].smsContent" -> "smsContent".
function F.leaf(field)
  local last
  for name in field:gmatch("[%a_][%w_]*") do last = name end
  return last
end

-- Every error is {rule = "X9", field = "...", message = "..."} and its message is a
-- non-empty string naming the field (skipped for non-string keys, whose path ends in "]"
-- after a non-index part). Returns true or false and a sentence.
function F.check_messages(errs)
  if type(errs) ~= "table" then return false, "errs is a " .. type(errs) end
  for i, e in ipairs(errs) do
    if type(e) ~= "table" then return false, "errs[" .. i .. "] is a " .. type(e) end
    if type(e.rule) ~= "string" or not e.rule:match("^[TNA]%d+$") then
      return false, "errs[" .. i .. "].rule is " .. show(e.rule)
    end
    if type(e.field) ~= "string" or e.field == "" then
      return false, "errs[" .. i .. "].field is " .. show(e.field)
    end
    if type(e.message) ~= "string" or e.message == "" then
      return false, "errs[" .. i .. "].message is " .. show(e.message)
    end
    local non_string_key = e.field:match("%]$") and not e.field:match("[%a_][%w_]*%[%d+%]$")
    local name = F.leaf(e.field)
    if name and not non_string_key and #name <= 64
       and not e.message:find(name, 1, true) then
      return false, "message of " .. e.rule .. "@" .. e.field .. " does not name "
        .. name .. ": " .. show(e.message)
    end
  end
  return true
end

-- No error (field or message) carries the value or any 32-byte slice of it.
function F.leaks(errs, value)
  local probes = { value }
  if #value > 64 then
    probes[#probes + 1] = value:sub(1, 32)
    probes[#probes + 1] = value:sub(-32)
  end
  for _, e in ipairs(errs or {}) do
    for _, p in ipairs(probes) do
      for _, s in ipairs({ e.message, e.field }) do
        if type(s) == "string" and s:find(p, 1, true) then
          return true, e.rule .. "@" .. e.field .. " contains " .. show(p)
        end
      end
    end
  end
  return false
end

-- UTF-8 text of one code point.
function F.utf8char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64,
                       0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                     0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- Strict UTF-8 check (no overlongs, surrogates, or code points above U+10FFFF).
function F.utf8_valid(s)
  if not s:find("[\128-\255]") then return true end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min, cp
    if c < 0x80 then len, cp, min = 1, c, 0
    elseif c >= 0xC2 and c <= 0xDF then len, cp, min = 2, c - 0xC0, 0x80
    elseif c >= 0xE0 and c <= 0xEF then len, cp, min = 3, c - 0xE0, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then len, cp, min = 4, c - 0xF0, 0x10000
    else return false end
    if i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local cc = s:byte(j)
      if cc < 0x80 or cc > 0xBF then return false end
      cp = cp * 64 + (cc - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
    i = i + len
  end
  return true
end

-- Runs the encoder; a body must be valid UTF-8 compact JSON that lua-cjson decodes.
-- Returns body, errs, decoded (decoded only when there is a body).
function F.encode(core, task, opts)
  local body, errs
  if opts == nil then
    body, errs = core.encode("recall_update", task)
  else
    body, errs = core.encode("recall_update", task, opts)
  end
  if body == nil then return nil, errs end
  assert(type(body) == "string", "body is a " .. type(body))
  assert(F.utf8_valid(body), "body is not valid UTF-8")
  assert(not body:find("[\1-\31]") and not body:find("\0", 1, true),
         "body holds a raw control character")
  local ok, decoded = pcall(cjson.decode, body)
  assert(ok, "body is not JSON: " .. tostring(decoded))
  return body, errs, decoded
end

-- MD5 hex through lua-md5 when it is installed for this Lua, else nil.
-- The request body of the vendor's page for this endpoint, verbatim.
F.VENDOR_BODY = [[
{
    "keyId": 299,
    "recallType": 0,
    "recallInterval": 30,
    "recallNum": 1,
    "nodeList": [
        {

            "voiceFileId": "120250811103439c1901f4c53b691b419ad8a143b.wav",
            "voiceFileName": null,
            "source": 1,
            "text": null,
            "lan": null,
            "speakingRate": null,
            "hangUpSms": 0,
            "idxSmsAppId": null,
            "smsContent": null,
            "senderId": null,
            "feedbackValue": null,
            "feedbackPush": null,
            "successPush": null,
            "successPushTime": null,
            "failedPush": null,
            "ringPush": null,
            "toSeat": 1,
            "sipGroupId": 1000038,
            "outboundControl": 1,
            "calloutRate": 1,
            "toSeatType": 1,
            "toSeatKey": null,
            "delayTransfer": 0
        }
    ]
}
]]

return F
