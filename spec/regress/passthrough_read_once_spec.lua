-- Regression: passthrough values were read twice from the task, once to check and once to
-- write, so a finalizer that ran in between (the task's own fields are written after its
-- nodes, whose walk allocates, so the collector steps there) could change what was sent
-- after it was checked: into a table, which was then sent as "". And passthrough integers
-- (Lua 5.3+) skipped the +-(2^53-1) rule known fields follow.
local core  = require "itnio.core"
local cjson = require "cjson"

local PASS = { passthrough = true }

local function base_task()
  local nodes = {}
  for i = 1, 30 do
    -- a passthrough field in each node: walking it allocates (the collector may step there)
    nodes[i] = { source = 3, text = "node " .. i, lan = "en-US", hangUpSms = 0, toSeat = 0, nodeExtra = i }
  end
  return { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = nodes,
           extraA = "original", extraB = 7 }
end

-- A finalizer (a table's __gc where the Lua has it, a userdata's on LuaJIT/5.1).
local function with_finalizer(f)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = f
    return p
  end
  return setmetatable({}, { __gc = f })
end

describe("regress: passthrough values", function()
  it("are read once: a finalizer that changes the task mid-encode changes nothing sent", function()
    local pause = collectgarbage("setpause", 0)
    local stepmul = collectgarbage("setstepmul", 1000)
    local ok, e = pcall(function()
      for _ = 1, 200 do
        local task = base_task()
        for _ = 1, 20 do
          with_finalizer(function() task.extraA = { "a table now" }; task.extraB = 2 ^ 60 end)
        end
        local body, errs = core.encode("recall_update", task, PASS)
        if body then
          local t = cjson.decode(body)
          assert.equal("original", t.extraA)
          assert.equal(7, t.extraB)
        else
          -- the change came before the pass that reads the task: then it is refused whole
          assert.equal("T6", errs[1].rule)
        end
      end
    end)
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
    assert(ok, e)
  end)

  -- Lua integers (5.3+) beyond 2^53-1: a JSON reader may round them.
  local bad = {}
  if math.type then
    bad = { math.tointeger(2 ^ 53), -math.tointeger(2 ^ 53), math.maxinteger, math.mininteger }
  end
  for _, v in ipairs(bad) do
    it("refuse an integer beyond 2^53-1 (T6), as known fields do: " .. tostring(v), function()
      local task = base_task()
      task.extraB = v
      local body, errs = core.encode("recall_update", task, PASS)
      assert.is_nil(body)
      assert.equal("T6", errs[1].rule)
      assert.equal("extraB", errs[1].field)
      assert.truthy(errs[1].message:find("2^53-1", 1, true), errs[1].message)
    end)
  end

  it("send a float beyond 2^53 as the double it is (it reads back exactly)", function()
    for _, v in ipairs{ 2 ^ 53, -(2 ^ 53) - 2, 2 ^ 63, 1e21, 1e300 } do
      local task = base_task()
      task.extraB = v
      local body = assert(core.encode("recall_update", task, PASS))
      assert.equal(v, cjson.decode(body).extraB)
    end
  end)

  it("still take 2^53-1, fractions, -0 and the edges of what JSON carries", function()
    for _, v in ipairs{ 2 ^ 53 - 1, -(2 ^ 53 - 1), 0.5, 1e300 / 1e10 * 0 + 1.5e-300, -0.0 } do
      local task = base_task()
      task.extraB = v
      local body = assert(core.encode("recall_update", task, PASS))
      assert.equal(v, cjson.decode(body).extraB)
    end
  end)
end)
