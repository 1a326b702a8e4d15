-- Generated answers for the property specs: statuses, header sets and bodies of every shape a
-- server (or a broken one) may send, from a seeded generator that gives the same cases under
-- every Lua (Park-Miller: exact in doubles).
--
--   local gen = require("support.answers").new(seed, secret)
--   local a = gen:answer()   -- { status, headers = { lower-case name = value }, body, raw, what }
--
-- a.raw is the same answer as HTTP/1.1 bytes (for a raw peer); a.what says what was drawn.
-- Some answers echo `secret` somewhere (message, data, a key, escaped), as a careless or
-- hostile server might.
local M = {}
M.__index = M

function M.new(seed, secret)
  return setmetatable({ x = (seed % 2147483646) + 1, secret = secret }, M)
end

-- An integer in [lo, hi].
function M:int(lo, hi)
  self.x = self.x * 16807 % 2147483647
  return lo + self.x % (hi - lo + 1)
end

function M:pick(list) return list[self:int(1, #list)] end
function M:chance(n) return self:int(1, n) == 1 end

local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local DAYS = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" }

function M:http_date(year)
  return ("%s, %02d %s %04d %02d:%02d:%02d GMT"):format(self:pick(DAYS), self:int(1, 28), self:pick(MONTHS),
    year, self:int(0, 23), self:int(0, 59), self:int(0, 59))
end

function M:date()
  local kind = self:int(1, 9)
  if kind <= 3 then return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + self:int(-7200, 7200)) end
  if kind == 4 then return self:http_date(self:int(1900, 1969)) end          -- before 1970
  if kind == 5 then return self:http_date(self:int(2100, 9999)) end          -- far ahead
  if kind == 6 then return self:http_date(self:pick{ 0, 1, 1970 }) end
  if kind == 7 then return "Sun, 06 Nov 1994 08:49:37 GMT; garbage" end
  if kind == 8 then
    return self:pick{ "", "yesterday", "Sunday, 06-Nov-94 08:49:37 GMT", "99 Feb 2020 99:99:99 GMT" }
  end
  return ("x"):rep(self:int(1, 5000))
end

function M:retry_after()
  local kind = self:int(1, 8)
  if kind <= 2 then return tostring(self:int(0, 3)) end
  if kind == 3 then
    return self:pick{ "9223372036854775808", "1" .. ("0"):rep(40), "18446744073709551616", "-1", "0.5" }
  end
  if kind == 4 then return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + self:int(-5, 5)) end
  if kind == 5 then return self:http_date(self:int(1000, 9999)) end
  if kind == 6 then return "  " .. self:int(0, 2) .. "  " end
  if kind == 7 then return ("9"):rep(self:int(1, 400)) end
  return self:pick{ "", "soon", "1e3", "0x10", "1, 2" }
end

function M:content_type()
  return self:pick{ "application/json", "application/json;charset=UTF-8", "text/html", "",
    "application/json; charset=latin1", ("a"):rep(3000), "application/problem+json" }
end

-- A JSON value of any type, up to `depth` deep.
function M:value(depth)
  local k = self:int(1, depth > 0 and 9 or 6)
  if k == 1 then return "null" end
  if k == 2 then return self:pick{ "true", "false" } end
  if k == 3 then
    return self:pick{ "0", "-1", "1.5", "1e308", "-0", "123456789012345678901234567890", "-22", "0.0" }
  end
  if k == 4 then
    return self:pick{ '""', '"ok"', '"\\u00e9t\\u00e9"', '"\\ud83d\\ude00"', '"bad \\ud800"',
                      '"' .. ("s"):rep(2000) .. '"' }
  end
  if k == 5 and self.secret then
    return self:pick{ '"' .. self.secret .. '"', '"x' .. self.secret:gsub("/", "\\/") .. 'y"' }
  end
  if k <= 6 then return '"plain"' end
  if k == 7 then
    local parts = {}
    for i = 1, self:int(0, 4) do parts[i] = self:value(depth - 1) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local parts = {}
  for i = 1, self:int(0, 4) do
    local key = (self.secret and self:chance(8)) and self.secret or ("k" .. i)
    parts[i] = '"' .. key .. '":' .. self:value(depth - 1)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function M:body()
  local k = self:int(1, 14)
  if k <= 6 then
    -- the vendor's shape, its fields of every type
    local fields = {}
    local code = self:pick{ "0", "0", "0", "-1", "-2", "-16", "-18", "-22", '"0"', '"-16"', '" 0 "', "-99",
                            "0.5", "1e400", "null", "true", '"x"', "[]", "{}", "-0", "4294967296" }
    fields[#fields + 1] = '"' .. self:pick{ "code", "code", "status", "Code" } .. '":' .. code
    if self:chance(2) then
      fields[#fields + 1] = '"' .. self:pick{ "msg", "reason", "message" } .. '":' .. self:value(1)
    end
    if self:chance(2) then fields[#fields + 1] = '"data":' .. self:value(3) end
    return "{" .. table.concat(fields, ",") .. "}"
  end
  if k == 7 then return "\239\187\191" .. '{"code":0}' end                        -- a BOM
  if k == 8 then return '{"code":0} trailing garbage' end
  if k == 9 then return ("["):rep(self:int(1, 3000)) .. ("]"):rep(self:int(0, 3000)) end   -- deep
  if k == 10 then return "" end
  if k == 11 then return '{"code":0,"msg":"\255\254 not utf-8"}' end
  if k == 12 then return "<html><body>Bad Gateway</body></html>" end
  if k == 13 then return self:value(4) end
  return '{"code":-1,"msg":"' .. (self.secret or "no") .. ' is wrong"}'
end

local STATUSES = { 200, 200, 200, 200, 200, 201, 204, 206, 299, 300, 302, 304, 400, 401, 403, 404, 408,
                   413, 429, 429, 500, 500, 502, 503, 503, 504, 599 }

function M:answer()
  local status = self:pick(STATUSES)
  local headers, order = {}, {}
  local function add(name, value)
    if headers[name] == nil then order[#order + 1] = name end
    headers[name] = value
  end
  if self:chance(2) then add("date", self:date()) end
  if self:chance(3) then add("retry-after", self:retry_after()) end
  if self:chance(2) then add("content-type", self:content_type()) end
  for i = 1, self:int(0, 3) do add("x-extra-" .. i, ("v"):rep(self:int(0, 200))) end
  if self:chance(10) and self.secret then add("x-echo", self.secret) end
  local body = self:body()
  local lines = { "HTTP/1.1 " .. status .. " Whatever" }
  for _, name in ipairs(order) do lines[#lines + 1] = name .. ": " .. headers[name] end
  lines[#lines + 1] = "Content-Length: " .. #body
  return { status = status, headers = headers, body = body,
           raw = table.concat(lines, "\r\n") .. "\r\n\r\n" .. body,
           what = status .. " " .. table.concat(order, ",") .. " body=" .. body:sub(1, 60) }
end

return M
