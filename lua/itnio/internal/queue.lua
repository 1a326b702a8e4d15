--- Private to lua-itnio. A first-in, first-out queue of pairs (the second value may be nil),
-- the one queue of the library: the runner's jobs ready to go and its callbacks due, the
-- batch's and the campaign's lines held back.
--
--     local q = queue.new()
--     q:push(job)            q:push(batch, index)
--     local a, b = q:pop()   -- nil when empty
--     q:len()  q:empty()  q:clear()
local setmetatable = setmetatable

local _M = {}

local Queue = {}
Queue.__index = Queue

--- A new, empty queue.
function _M.new()
  return setmetatable({ a = {}, b = {}, head = 1, tail = 0 }, Queue)
end

--- Adds a pair at the end.
-- @param a the first value (not nil)
-- @param[opt] b the second
function Queue:push(a, b)
  local t = self.tail + 1
  self.tail = t
  self.a[t], self.b[t] = a, b
end

--- Takes the first pair out: a, b; nil when the queue is empty.
function Queue:pop()
  local h = self.head
  if h > self.tail then return nil end
  local a, b = self.a[h], self.b[h]
  self.a[h], self.b[h] = nil, nil
  if h == self.tail then self.head, self.tail = 1, 0 else self.head = h + 1 end
  return a, b
end

--- The first pair, left in the queue; nil when empty.
function Queue:peek()
  local h = self.head
  if h > self.tail then return nil end
  return self.a[h], self.b[h]
end

--- How many pairs it holds.
function Queue:len()
  return self.tail - self.head + 1
end

--- Whether it holds nothing.
function Queue:empty()
  return self.head > self.tail
end

--- Empties it.
function Queue:clear()
  self.a, self.b, self.head, self.tail = {}, {}, 1, 0
end

return _M
