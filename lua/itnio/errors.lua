--- Error types: one class per cause, per vendor status code and per failure kind.
-- Every error is a table with `kind` (its class name), `code`, `message`, `retryable`,
-- `http_status`, `attempts`; TransportError adds `reason` and `sent`, HttpError `retry_after`,
-- ValidationError `err.errors` (the broken rules). `tostring(err)` is one line.
--
-- The classes: ConfigError, ValidationError, AuthError (-1), IpLimitError (-2),
-- TimestampExpiredError (-16), SystemError (-18), ParameterError (-22), ApiError (any other
-- code), HttpError, TransportError, DecodeError, CircuitOpenError (the client's breaker is
-- open: nothing was sent; `retry_after` is the seconds left), InputError (a campaign's line
-- that is no task: not a JSON object, or too long); each is a field of this module.
-- @module itnio.errors
local setmetatable, getmetatable, tostring, type, pairs, pcall =
  setmetatable, getmetatable, tostring, type, pairs, pcall
local concat = table.concat

local _M = {}

local function one_line(s)
  return (tostring(s):gsub("[%c]+", " "))
end

local function describe(e)
  local parts = {}
  if e.code ~= nil then parts[#parts + 1] = "code " .. tostring(e.code) end
  if e.http_status then parts[#parts + 1] = "HTTP " .. tostring(e.http_status) end
  if e.attempts then
    parts[#parts + 1] = e.attempts == 1 and "1 attempt" or (tostring(e.attempts) .. " attempts")
  end
  local tail = #parts > 0 and (" (" .. concat(parts, ", ") .. ")") or ""
  return e.kind .. ": " .. one_line(e.message or "") .. tail
end

-- define(name, defaults): a class whose instances get the defaults unless given.
local function define(name, defaults)
  local cls = { kind = name }
  cls.__index = cls
  cls.__tostring = describe
  cls.__name = "itnio." .. name
  --- A new error of this class: the class's defaults, then `fields` (a table, or nil).
  -- @local
  function cls.new(fields)
    local e = { kind = name }
    for k, v in pairs(defaults) do e[k] = v end
    if fields then for k, v in pairs(fields) do e[k] = v end end
    return setmetatable(e, cls)
  end
  --- Is e an instance of this class (or of class c)?
  -- @local
  function cls.is(e, c) return getmetatable(e) == (c or cls) end
  _M[name] = cls
  return cls
end

define("ConfigError",           { retryable = false, message = "bad client options" })
define("ValidationError",       { retryable = false, message = "the task breaks the API's rules" })
define("AuthError",             { retryable = false, code = -1,
                                  message = "account authentication exception" })
define("IpLimitError",          { retryable = false, code = -2,  message = "IP limit" })
define("TimestampExpiredError", { retryable = false, code = -16, message = "timestamp expired" })
define("SystemError",           { retryable = true,  code = -18, message = "system exception" })
define("ParameterError",        { retryable = false, code = -22, message = "parameter exception" })
define("ApiError",              { retryable = false, message = "API error" })
define("HttpError",             { retryable = false, message = "HTTP error" })
define("TransportError",        { retryable = false, sent = false, message = "transport error" })
define("DecodeError",           { retryable = false, message = "the answer could not be read" })
define("CircuitOpenError",      { retryable = true, message = "the circuit breaker is open" })
define("InputError",            { retryable = false, message = "the input is not a task" })

local by_code = {
  [-1] = _M.AuthError, [-2] = _M.IpLimitError, [-16] = _M.TimestampExpiredError,
  [-18] = _M.SystemError, [-22] = _M.ParameterError,
}

--- The error for a vendor status code (any code but 0): of its class, or an ApiError.
-- @tparam int code the answer's code
-- @tparam[opt] string message the answer's message (else the class's)
-- @tparam[opt] table fields more fields of the error (`http_status`...)
-- @treturn table the error
function _M.from_code(code, message, fields)
  local cls = by_code[code] or _M.ApiError
  local e = cls.new(fields)
  e.code = code
  if message and message ~= "" then e.message = message end
  return e
end

--- Any value as text, never raising: a table whose `__tostring` raises, or returns no string,
-- is named by its type. For error values of the caller's (a callback's, a transport's).
-- @param v any value
-- @treturn string the text
function _M.text(v)
  if type(v) == "string" then return v end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "(a " .. type(v) .. " that cannot be printed)"
end

--- Whether err is an error of class cls: `errors.is(err, errors.AuthError)`.
-- @param err any value (an error, or anything else)
-- @tparam table cls a class of this module
-- @treturn boolean true if it is
function _M.is(err, cls)
  return type(err) == "table" and cls ~= nil and getmetatable(err) == cls
end

--- A ValidationError from the core's list of broken rules: its message names them all (the
-- first five, then how many more).
-- @tparam {table,...} list the broken rules, `{ rule, field, message }` each
-- @tparam[opt] boolean truncated true when the core cut the list (at 100)
-- @tparam[opt="task"] string noun what the body is called (its endpoint's noun)
-- @treturn table the ValidationError
function _M.validation(list, truncated, noun)
  local parts = {}
  for i = 1, #list do
    local e = list[i]
    parts[i] = e.rule .. " " .. e.message
    if i == 5 and #list > 5 then
      parts[i + 1] = "and " .. (#list - 5) .. (truncated and " more (list cut at 100)" or " more")
      break
    end
  end
  local n = #list
  return _M.ValidationError.new{
    errors = list, truncated = truncated or nil, attempts = 0,
    message = "the " .. (noun or "task") .. " breaks " .. n .. (truncated and "+" or "")
      .. (n == 1 and " rule: " or " rules: ")
      .. concat(parts, "; "),
  }
end

return _M
