--- The checks of what callers pass in, in one place: option names (a typo is named, with the
-- nearest known name), and the argument errors of the Lua layer's public functions.
-- Private to the Lua layer.
local type, pairs, error, tostring = type, pairs, error, tostring
local sort, concat = table.sort, table.concat
local min = math.min
local byte = string.byte

local _M = {}

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
function _M.unknown_option(opts, known)
  local bad = {}
  for k in pairs(opts) do
    if known[k] == nil then bad[#bad + 1] = k end
  end
  if #bad == 0 then return nil end
  for i = 1, #bad do bad[i] = type(bad[i]) == "string" and bad[i] or ("[" .. tostring(bad[i]) .. "]") end
  sort(bad)
  local name = bad[1]
  local near = _M.nearest(name, known)
  return "unknown option '" .. name .. "'" .. (near and (" (did you mean '" .. near .. "'?)") or "")
    .. (#bad > 1 and (" and " .. (#bad - 1) .. " more: " .. concat(bad, ", ", 2)) or "")
end

--- Raises "bad argument #n to 'fname' (why)". level is error()'s level as the caller of bad
-- would give it: 2 (the default) blames the caller of the public function that calls bad;
-- each function between them adds one.
function _M.bad(n, fname, why, level)
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. why .. ")", (level or 2) + 1)
end

--- Raises unless opts is nil or a table whose keys are all known; returns opts or an empty
-- table. n and fname name the argument in the error; level is as for bad, from the caller.
function _M.options(opts, known, n, fname, level)
  level = (level or 2) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then _M.bad(n, fname, "table expected, got " .. type(opts), level) end
  local why = _M.unknown_option(opts, known)
  if why then _M.bad(n, fname, why, level) end
  return opts
end

--- The set of names of a list.
function _M.set(list)
  local s = {}
  for i = 1, #list do s[list[i]] = true end
  return s
end

return _M
