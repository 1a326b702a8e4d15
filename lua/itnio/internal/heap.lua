--- Private to lua-itnio. A min-heap of items by time, each item knowing its place (item[pos],
-- pos the heap's own key), so that an item leaves at once when it ends: nothing stale holds
-- it. The runner keeps its retry timers and its deadlines in two.
--
--     local h = heap.new("wpos")
--     h:push(job, at)   h:remove(job)   local job, at = h:top()   h.n
local floor, setmetatable = math.floor, setmetatable

local _M = {}

local Heap = {}
Heap.__index = Heap

--- A new, empty heap whose items keep their place under the key pos.
-- @tparam string pos the key
function _M.new(pos)
  return setmetatable({ n = 0, at = {}, item = {}, pos = pos }, Heap)
end

local function place(h, i, at, item)
  h.at[i], h.item[i] = at, item
  item[h.pos] = i
end

local function up(h, i)
  local at, item = h.at[i], h.item[i]
  while i > 1 do
    local p = floor(i / 2)
    if h.at[p] <= at then break end
    place(h, i, h.at[p], h.item[p])
    i = p
  end
  place(h, i, at, item)
end

local function down(h, i)
  local n, at, item = h.n, h.at[i], h.item[i]
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and h.at[c + 1] < h.at[c] then c = c + 1 end
    if at <= h.at[c] then break end
    place(h, i, h.at[c], h.item[c])
    i = c
  end
  place(h, i, at, item)
end

--- Adds item, due at `at`.
-- @tparam table item the item
-- @tparam number at when it is due
function Heap:push(item, at)
  local i = self.n + 1
  self.n = i
  self.at[i], self.item[i] = at, item
  up(self, i)
end

--- Takes item out, wherever it is (nothing when it is not in).
-- @tparam table item the item
function Heap:remove(item)
  local i = item[self.pos]
  if not i then return end
  item[self.pos] = nil
  local n = self.n
  local at, last = self.at[n], self.item[n]
  self.at[n], self.item[n], self.n = nil, nil, n - 1
  if i == n then return end
  self.at[i], self.item[i] = at, last
  last[self.pos] = i
  if i > 1 and at < self.at[floor(i / 2)] then up(self, i) else down(self, i) end
end

--- The soonest item and its time; nil when the heap is empty.
function Heap:top()
  if self.n == 0 then return nil end
  return self.item[1], self.at[1]
end

return _M
