-- Cost of building one request: our core (validate + encode + sign) against what a
-- hand-written client does with lua-cjson and lua-md5 (encode + MD5, no validation).
--
--   build.lua ITERATIONS MAX_SECONDS REPS VARIANT...
--
-- Variants: ours (core.encode + sign), ours_encode, ours_sign,
-- peer (cjson.encode + md5.sumhexa), cjson, md5, walk (bench/walk_floor.c: only reading every
-- key and value of the task through the Lua C API, the floor of any encoder of a Lua table;
-- bench/run builds it onto LUA_CPATH). Each rep runs every variant once, in turn,
-- so slow phases of a shared machine hit all of them alike. Prints one line per variant:
-- "name median_us min_us max_us iterations" (iterations: the smallest count a rep reached).
-- Times are CPU time (os.clock): the process's own work, not the neighbours'.
local core = require "itnio.core"
local cjson = require "cjson"
local new_task = require "task"

local iterations, max_seconds, reps = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
assert(iterations and max_seconds and reps and arg[4],
       "usage: build.lua ITERATIONS MAX_SECONDS REPS VARIANT...")

local KEY, SECRET, T0 = "bDqJFiq9", "7bz1lzh9", 1630468800
local task = new_task()
local cencode_core, sign = core.encode, core.sign
local function encode(t) return cencode_core("recall_update", t) end
local cencode = cjson.encode
local ok_md5, md5 = pcall(require, "md5")   -- lua-md5 ships for Lua 5.1/LuaJIT only
local sumhexa = ok_md5 and md5.sumhexa
local ok_walk, walk = pcall(require, "walk_floor")

-- Each body: one operation, its result's length returned so nothing is optimised away.
local variants = {
  ours        = function(i) return #assert(encode(task)) + #sign(KEY, SECRET, T0 + i) end,
  ours_encode = function() return #assert(encode(task)) end,
  ours_sign   = function(i) return #sign(KEY, SECRET, T0 + i) end,
  peer        = function(i) return #cencode(task) + #sumhexa(KEY .. SECRET .. (T0 + i)) end,
  cjson       = function() return #cencode(task) end,
  md5         = function(i) return #sumhexa(KEY .. SECRET .. (T0 + i)) end,
  walk        = function() return walk(task) end,
}

local names = {}
for i = 4, #arg do
  local f = variants[arg[i]]
  assert(f, "unknown variant " .. arg[i])
  assert(sumhexa or not arg[i]:find("md5") and arg[i] ~= "peer", "no md5 module in " .. _VERSION)
  assert(ok_walk or arg[i] ~= "walk", "no walk_floor module on LUA_CPATH")
  names[#names + 1] = arg[i]
end

local clock = os.clock
local sink = 0

-- Runs f up to n times, stopping early past max_seconds (checked every 1000 calls).
local function measure(f, n)
  local done = 0
  local t0 = clock()
  while done < n do
    for i = done + 1, done + 1000 do sink = sink + f(i) end
    done = done + 1000
    if clock() - t0 > max_seconds then break end
  end
  return (clock() - t0) / done * 1e6, done
end

for _, name in ipairs(names) do measure(variants[name], 5000) end   -- warm-up (and the JIT)

local samples, counts = {}, {}
for _ = 1, reps do
  for _, name in ipairs(names) do
    local us, n = measure(variants[name], iterations)
    samples[name] = samples[name] or {}
    table.insert(samples[name], us)
    counts[name] = math.min(counts[name] or n, n)
  end
end

for _, name in ipairs(names) do
  local s = samples[name]
  table.sort(s)
  print(("%s %.3f %.3f %.3f %d"):format(name, s[math.floor((#s + 1) / 2)], s[1], s[#s], counts[name]))
end
io.stderr:write(sink > 0 and "" or "nothing measured\n")
