--- Private to lua-itnio. The one checker of what callers pass in: option names (a typo is
-- named, with the nearest known name) and the one form of an argument error,
-- "bad argument #n to 'fname' (why)", raised at the caller's own line.
--
--     options.mine()                       -- at the top of a module of the library
--     opts = options.check(opts, KNOWN, "batch_recall_update", 2)
--     options.bad("poll", 1, "timeout must be a number")
--     local why = options.unknown(opts, KNOWN)   -- the sentence, for a ConfigError
--
-- The caller's line is found, not counted: an argument error blames the first function on
-- the stack that is not the library's own (each module of it says so with `mine`).
local type, pairs, error, tostring = type, pairs, error, tostring
local sort, concat = table.sort, table.concat
local min, floor, huge = math.min, math.floor, math.huge
local byte = string.byte
local getinfo = debug and debug.getinfo

local _M = {}

local ours = { ["=(tail call)"] = true }   -- chunk source -> true, for the library's own modules
                                          -- (and Lua 5.1's mark of a frame a tail call left)

--- Marks the module that calls it as the library's own: an argument error never blames it.
function _M.mine()
  if getinfo then ours[getinfo(2, "S").source] = true end
end
_M.mine()

-- The stack level of the first function that is not the library's own (as error() counts
-- levels from the function that calls it, here bad's caller's view: 2 is bad's caller).
local function blame()
  if not getinfo then return 3 end
  local level = 3
  while true do
    local info = getinfo(level, "S")
    if not info then return level - 1 end
    if not ours[info.source] then return level - 1 end
    level = level + 1
  end
end

--- Raises "bad argument #n to 'fname' (why)", at the line of the library's caller.
-- @tparam string fname the public function's name
-- @tparam int n the argument's position
-- @tparam string why what is wrong with it
function _M.bad(fname, n, why)
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. why .. ")", blame())
end

-- The edit distance of a and b (insert, delete, replace, swap two neighbours), or more
-- than `limit` as soon as it must be.
local function distance(a, b, limit)
  local la, lb = #a, #b
  if la - lb > limit or lb - la > limit then return limit + 1 end
  local prev2, prev, cur = {}, {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = byte(a, i)
    local best = i
    for j = 1, lb do
      local cb = byte(b, j)
      local d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == cb and 0 or 1))
      if i > 1 and j > 1 and ca == byte(b, j - 1) and byte(a, i - 1) == cb then
        d = min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
      if d < best then best = d end
    end
    if best > limit then return limit + 1 end
    prev2, prev, cur = prev, cur, prev2
  end
  return prev[lb]
end

--- The known name nearest to `name` (ignoring case), or nil when none is near.
-- @tparam string name a name that is not known
-- @tparam table known the set of known names
function _M.nearest(name, known)
  local lname = name:lower()
  local limit = #name <= 4 and 1 or (#name <= 8 and 2 or 3)
  local best, bestd
  local names = {}
  for k in pairs(known) do names[#names + 1] = k end
  sort(names)   -- the same answer every run, whatever the hash order
  for i = 1, #names do
    local k = names[i]
    local d = distance(lname, k:lower(), limit)
    if d <= limit and (not bestd or d < bestd) then best, bestd = k, d end
  end
  return best
end

--- nil when every key of opts is a name in `known` (a set), else a sentence naming the first
-- unknown one (in sorted order) and the nearest known name.
-- @tparam table opts the options
-- @tparam table known the set of known names
function _M.unknown(opts, known)
  local bad = {}
  for k in pairs(opts) do
    if known[k] == nil then
      bad[#bad + 1] = type(k) == "string" and k or ("[" .. tostring(k) .. "]")
    end
  end
  if #bad == 0 then return nil end
  sort(bad)
  local name = bad[1]
  local near = _M.nearest(name, known)
  return "unknown option '" .. name .. "'" .. (near and (" (did you mean '" .. near .. "'?)") or "")
    .. (#bad > 1 and (" and " .. (#bad - 1) .. " more: " .. concat(bad, ", ", 2)) or "")
end

--- opts, or an empty table for nil; raises (bad) unless it is a table whose keys are all
-- known.
-- @param opts the options
-- @tparam table known the set of known names
-- @tparam string fname the public function's name
-- @tparam int n the argument's position
function _M.check(opts, known, fname, n)
  if opts == nil then return {} end
  if type(opts) ~= "table" then _M.bad(fname, n, "table expected, got " .. type(opts)) end
  local why = _M.unknown(opts, known)
  if why then _M.bad(fname, n, why) end
  return opts
end

--- The set of the names of a list.
-- @tparam {string,...} list the names
function _M.set(list)
  local s = {}
  for i = 1, #list do s[list[i]] = true end
  return s
end

--- Whether v is a number from lo to hi (not NaN); whole: a whole number too.
-- @param v the value
-- @tparam number lo the least
-- @tparam number hi the most
-- @tparam[opt] boolean whole a whole number only
function _M.is_number(v, lo, hi, whole)
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then return false end
  return not whole or (v == floor(v) and v ~= huge and v ~= -huge)
end

return _M
