-- Hostile input for itnio.core.encode: wrong types everywhere, NaN/inf,
-- integers past 2^53, negative zero, NUL bytes, invalid UTF-8, maps and holes, cycles,
-- functions/userdata/threads, metatables that raise, 10k nodes, huge strings.
-- Each gets errors naming rule and field, with a message that leaks no long value;
-- nothing raises, crashes or writes invalid JSON.
local core = require "itnio.core"
local F = require "support.fixtures"

local PASS = { passthrough = true }
local voice, agent = F.voice, F.agent
local rep = string.rep

local THREAD = coroutine.create(function() end)
local USERDATA = io.stdout
local function raiser() error("a metamethod ran", 0) end
local RAISING = { __index = raiser, __newindex = raiser, __pairs = raiser, __ipairs = raiser,
  __len = raiser, __tostring = raiser, __eq = raiser, __lt = raiser, __le = raiser,
  __concat = raiser, __call = raiser, __unm = raiser }
local function raising(t) return setmetatable(t or {}, RAISING) end

-- Encodes (never raising) and expects a refusal; checks the shape of every error.
local function refused(task, opts, skip_messages)
  local ok, body, errs = pcall(F.encode, core, task, opts)
  assert(ok, "raised: " .. tostring(body))
  assert(body == nil, "accepted: " .. tostring(body and body:sub(1, 200)))
  assert.is_table(errs)
  assert.truthy(#errs >= 1)
  if not skip_messages then
    local good, msg = F.check_messages(errs)
    assert(good, msg)
  end
  return errs
end

local function expect(errs, rule, field)
  assert(F.find_error(errs, rule, field),
         "expected " .. rule .. "@" .. field .. ", got " .. F.describe_errs(errs))
end

local function expect_prefix(errs, rule, prefix)
  assert(F.find_error_prefix(errs, rule, prefix),
         "expected " .. rule .. "@" .. prefix .. "..., got " .. F.describe_errs(errs))
end

-- Encodes (never raising); a body, if any, must be valid (F.encode checks it).
local function never_invalid(task, opts)
  local ok, body, errs = pcall(F.encode, core, task, opts)
  assert(ok, "raised or wrote invalid JSON: " .. tostring(body))
  assert(body ~= nil or (type(errs) == "table" and #errs >= 1), "neither body nor errors")
end

local NUMBER_KINDS = {
  { "a digit string", "1" }, { "true", true }, { "false", false }, { "an empty table", {} },
  { "an array", { 1 } }, { "a function", print }, { "a userdata", USERDATA },
  { "a thread", THREAD }, { "NaN", 0 / 0 }, { "inf", 1 / 0 }, { "-inf", -1 / 0 },
  { "2^53", 2^53 }, { "2^53+1", 9007199254740993 }, { "2^63", 2^63 }, { "-2^63", -2^63 },
  { "1e308", 1e308 }, { "a table with raising metamethods", raising() },
}
if math.maxinteger then
  NUMBER_KINDS[#NUMBER_KINDS + 1] = { "math.maxinteger", math.maxinteger }
  NUMBER_KINDS[#NUMBER_KINDS + 1] = { "math.mininteger", math.mininteger }
end

local STRING_KINDS = {
  { "a number", 1 }, { "zero", 0 }, { "true", true }, { "an empty table", {} },
  { "an array of strings", { "a" } }, { "a function", print }, { "a userdata", USERDATA },
  { "a thread", THREAD }, { "NaN", 0 / 0 }, { "a string with a NUL", "a\0b" },
  { "a lone NUL", "\0" }, { "a string ending in byte FF", "ok\255" },
  { "a table with raising metamethods", raising() },
}

local TOP_INT = { { "keyId", "T1" }, { "recallInterval", "T2" }, { "recallNum", "T3" },
  { "recallType", "T4" } }
local NODE_NUM = { { "source", "N1" }, { "speakingRate", "N7" }, { "ssmlGender", "N8" },
  { "accent", "N9" }, { "hangUpSms", "N10" }, { "feedbackPush", "N13" },
  { "successPush", "N13" }, { "failedPush", "N13" }, { "ringPush", "N13" },
  { "successPushTime", "N15" }, { "toSeat", "N16" }, { "sipGroupId", "N17" },
  { "outboundControl", "N18" }, { "calloutRate", "N19" }, { "toSeatType", "N20" },
  { "delayTransfer", "N22" } }
local NODE_STR = { { "voiceFileId", "N2" }, { "uploadName", "N3" }, { "baseFile", "N4" },
  { "text", "N5" }, { "lan", "N6" }, { "smsContent", "N11" }, { "senderId", "N12" },
  { "feedbackValue", "N14" }, { "toSeatKey", "N21" }, { "voiceFileName", "N23" },
  { "idxSmsAppId", "N23" } }

describe("wrong types", function()
  for _, f in ipairs(TOP_INT) do
    for _, k in ipairs(NUMBER_KINDS) do
      it("refuses " .. k[1] .. " as " .. f[1] .. " under " .. f[2], function()
        local task = F.task()
        task[f[1]] = k[2]
        expect(refused(task), f[2], f[1])
      end)
    end
  end
  for _, f in ipairs(NODE_NUM) do
    for _, k in ipairs(NUMBER_KINDS) do
      it("refuses " .. k[1] .. " as node " .. f[1] .. " under " .. f[2], function()
        local node = voice(3)
        node[f[1]] = k[2]
        expect(refused(F.task_nodes(node)), f[2], "nodeList[1]." .. f[1])
      end)
    end
  end
  for _, k in ipairs(NUMBER_KINDS) do
    it("refuses " .. k[1] .. " as scriptId under A2", function()
      expect(refused(F.task_nodes(agent({ scriptId = k[2] }))), "A2", "nodeList[1].scriptId")
    end)
  end
  for _, f in ipairs(NODE_STR) do
    for _, k in ipairs(STRING_KINDS) do
      it("refuses " .. k[1] .. " as node " .. f[1] .. " under " .. f[2], function()
        local node = voice(3)
        node[f[1]] = k[2]
        expect(refused(F.task_nodes(node)), f[2], "nodeList[1]." .. f[1])
      end)
    end
  end
  for _, k in ipairs(STRING_KINDS) do
    it("refuses " .. k[1] .. " as a recallIntent element under A1", function()
      local task = F.task()
      task.recallIntent = { "101", k[2] }
      expect(refused(task), "A1", "recallIntent[2]")
    end)
  end
  for _, k in ipairs({ { "a string", "101" }, { "a number", 101 }, { "true", true },
      { "a function", print }, { "a userdata", USERDATA }, { "a thread", THREAD } }) do
    it("refuses " .. k[1] .. " as recallIntent under A1", function()
      expect(refused(F.task({ recallIntent = k[2] })), "A1", "recallIntent")
    end)
    it("refuses " .. k[1] .. " as nodeList under T5", function()
      expect(refused(F.task({ nodeList = k[2] })), "T5", "nodeList")
    end)
    it("refuses " .. k[1] .. " as a node under T5", function()
      expect(refused(F.task({ nodeList = { voice(1), k[2] } })), "T5", "nodeList[2]")
    end)
  end
end)

describe("numbers at the edges", function()
  local nz = -0.0
  it("builds a real negative zero", function()
    assert.are.equal(-1 / 0, 1 / nz)
  end)
  it("accepts -0.0 in integer fields and writes 0", function()
    local task = F.task({ recallType = nz, nodeList = { voice(3, { hangUpSms = nz,
      accent = nz, toSeat = nz }) } })
    local body = F.encode(core, task)
    assert(body, "refused")
    assert.falsy(body:find("-0", 1, true), body)
    assert.truthy(body:find('"recallType":0,', 1, true))
    assert.truthy(body:find('"accent":0,', 1, true))
  end)
  it("refuses -0.0 where the minimum is 1 or 0.25", function()
    local errs = refused(F.task({ keyId = nz, nodeList = { voice(3, { speakingRate = nz }) } }))
    expect(errs, "T1", "keyId")
    expect(errs, "N7", "nodeList[1].speakingRate")
  end)
  it("accepts 2^53-1 and refuses 2^53 for the same field", function()
    assert.truthy(F.encode(core, F.task({ keyId = 2^53 - 1 })))
    expect(refused(F.task({ keyId = 2^53 })), "T1", "keyId")
  end)
  for _, k in ipairs({ { "NaN", 0 / 0 }, { "inf", 1 / 0 }, { "-inf", -1 / 0 },
      { "2^63", 2^63 }, { "1e-320", 1e-320 } }) do
    it("never writes invalid JSON for a passthrough " .. k[1], function()
      never_invalid(F.task({ x = k[2] }), PASS)
      never_invalid(F.task_nodes(voice(1, { x = k[2] })), PASS)
    end)
  end
end)

local INVALID_UTF8 = {
  { "an overlong slash C0 AF", "\192\175" }, { "an overlong NUL C0 80", "\192\128" },
  { "a 3-byte overlong E0 80 AF", "\224\128\175" },
  { "a 4-byte overlong F0 80 80 AF", "\240\128\128\175" },
  { "a high surrogate ED A0 80", "\237\160\128" }, { "a low surrogate ED BF BF", "\237\191\191" },
  { "a CESU-8 surrogate pair", "\237\160\189\237\184\128" },
  { "U+110000 F4 90 80 80", "\244\144\128\128" }, { "an F5 lead byte", "\245\128\128\128" },
  { "a 5-byte form", "\248\136\128\128\128" }, { "byte FE", "\254" }, { "byte FF", "\255" },
  { "a truncated 2-byte sequence", "\195" }, { "a truncated 3-byte sequence", "\228\184" },
  { "a truncated 4-byte sequence", "\240\159\152" }, { "a stray continuation byte", "\128" },
  { "a lead byte followed by ASCII", "\228a\184" },
}
describe("invalid UTF-8", function()
  local where = {
    { "text", "N5", function(s) return F.task_nodes(voice(3, { text = s })) end,
      "nodeList[1].text" },
    { "smsContent", "N11", function(s) return F.task_nodes(voice(1, { smsContent = s })) end,
      "nodeList[1].smsContent" },
    { "voiceFileId", "N2", function(s) return F.task_nodes(voice(1, { voiceFileId = s })) end,
      "nodeList[1].voiceFileId" },
    { "uploadName", "N3", function(s) return F.task_nodes(voice(2, { uploadName = s })) end,
      "nodeList[1].uploadName" },
    { "recallIntent", "A1", function(s) return F.task({ recallIntent = { s } }) end,
      "recallIntent[1]" },
  }
  for _, w in ipairs(where) do
    for _, bad in ipairs(INVALID_UTF8) do
      it("refuses " .. bad[1] .. " at the end of " .. w[1] .. " under " .. w[2], function()
        expect(refused(w[3]("hello" .. bad[2])), w[2], w[4])
      end)
      it("refuses " .. bad[1] .. " inside " .. w[1] .. " under " .. w[2], function()
        expect(refused(w[3]("hel" .. bad[2] .. "lo")), w[2], w[4])
      end)
    end
  end
  it("never writes invalid UTF-8 for passthrough keys and values", function()
    never_invalid(F.task({ ["k\255"] = 1 }), PASS)
    never_invalid(F.task({ x = "v\237\160\128" }), PASS)
    never_invalid(F.task({ x = "a\0b" }), PASS)
    never_invalid(F.task_nodes(voice(1, { ["\192\175"] = "x" })), PASS)
  end)
end)

describe("keys that are not what they seem", function()
  local v = voice(1)
  local bad_lists = {
    { "a map", { a = v } }, { "a hole", { [1] = v, [3] = v } }, { "only key 2", { [2] = v } },
    { "key 1e9", { [1] = v, [1e9] = v } }, { "key 2^53", { [1] = v, [2^53] = v } },
    { "key -1", { v, [-1] = v } }, { "key 0", { [0] = v } }, { "key inf", { v, [1 / 0] = v } },
    { "key true", { v, [true] = v } }, { "a function key", { v, [print] = v } },
    { "a table key", { v, [{}] = v } }, { "a userdata key", { v, [USERDATA] = v } },
  }
  for _, row in ipairs(bad_lists) do
    it("refuses a nodeList with " .. row[1] .. " under T5", function()
      expect(refused(F.task({ nodeList = row[2] })), "T5", "nodeList")
    end)
    it("refuses a recallIntent with " .. row[1] .. " under A1", function()
      local list = {}
      for k in pairs(row[2]) do list[k] = "101" end
      expect(refused(F.task({ recallIntent = list })), "A1", "recallIntent")
    end)
  end
  local keys = { { "a number", 5 }, { "a fraction", 1.5 }, { "true", true },
    { "a table", {} }, { "a function", print }, { "a userdata", USERDATA },
    { "a thread", THREAD }, { "a table with raising metamethods", raising() } }
  for _, k in ipairs(keys) do
    it("refuses " .. k[1] .. " as a top-level key under T6, even with passthrough", function()
      local task = F.task()
      task[k[2]] = 1
      expect_prefix(refused(task), "T6", "[")
      expect_prefix(refused(task, PASS), "T6", "[")
    end)
    it("refuses " .. k[1] .. " as a node key under N24, even with passthrough", function()
      local node = voice(1)
      node[k[2]] = "x"
      expect_prefix(refused(F.task_nodes(node)), "N24", "nodeList[1][")
      expect_prefix(refused(F.task_nodes(node), PASS), "N24", "nodeList[1][")
    end)
  end
  it("does not take a key with a NUL for the key before the NUL", function()
    local task = F.task()
    task["keyId\0x"] = 5
    expect_prefix(refused(task, nil, true), "T6", "keyId")
    local node = voice(1)
    node["source\0"] = 2
    expect_prefix(refused(F.task_nodes(node), nil, true), "N24", "nodeList[1].source")
  end)
  it("refuses an unknown key of 1 MB", function()
    local task = F.task()
    task[rep("k", 1048576)] = 1
    expect_prefix(refused(task, nil, true), "T6", "kkkk")
  end)
end)

describe("cycles and deep nesting", function()
  it("treats a task inside its own nodeList as a broken node", function()
    local t = F.task()
    t.nodeList = { t }
    local errs = refused(t)
    expect(errs, "N24", "nodeList[1].nodeList")
    expect(errs, "N1", "nodeList[1].source")
  end)
  it("refuses a node that holds itself, with and without passthrough", function()
    local node = voice(1)
    node.self = node
    expect(refused(F.task_nodes(node)), "N24", "nodeList[1].self")
    expect(refused(F.task_nodes(node), PASS), "N24", "nodeList[1].self")
  end)
  it("refuses a task that holds itself, with and without passthrough", function()
    local t = F.task()
    t.self = t
    expect(refused(t), "T6", "self")
    expect(refused(t, PASS), "T6", "self")
  end)
  it("refuses a recallIntent that holds itself", function()
    local ri = { "a" }
    ri[2] = ri
    expect(refused(F.task({ recallIntent = ri })), "A1", "recallIntent[2]")
  end)
  it("refuses a nodeList that holds itself", function()
    local t = F.task()
    t.nodeList[2] = t.nodeList
    expect(refused(t), "N1", "nodeList[2].source")
  end)
  local function nest(depth, leaf)
    local t = leaf
    for _ = 1, depth do t = { t } end
    return t
  end
  it("refuses nesting 100000 deep in a node value, a node and an intent", function()
    -- Assigned after F.task(): its merge copies tables and would recurse as deep.
    local t = F.task()
    t.nodeList[1].bogus = nest(100000, 1)
    expect(refused(t), "N24", "nodeList[1].bogus")
    t = F.task()
    t.nodeList = nest(100000, voice(1))
    expect(refused(t), "N1", "nodeList[1].source")
    t = F.task()
    t.recallIntent = nest(100000, "a")
    expect(refused(t), "A1", "recallIntent[1]")
  end)
end)

describe("metatables", function()
  it("reads a valid task raw even when every metamethod raises", function()
    local plain = F.task_nodes(voice(1, F.SMS), voice(3, F.SEAT), agent())
    plain.recallIntent = { "101" }
    local want = assert(F.encode(core, plain))
    local t = F.copy(plain)
    for _, n in ipairs(t.nodeList) do raising(n) end
    raising(t.nodeList)
    raising(t.recallIntent)
    raising(t)
    local ok, body, errs = pcall(F.encode, core, t)
    assert(ok, "raised: " .. tostring(body))
    assert(body, F.describe_errs(errs))
    assert.are.equal(want, body)
  end)
  it("finds no fields behind __index of a proxy task", function()
    local errs = refused(setmetatable({}, { __index = F.task() }))
    local ok, msg = F.same_errors(errs, { { "T1", "keyId" }, { "T2", "recallInterval" },
      { "T3", "recallNum" }, { "T4", "recallType" } })
    assert(ok, msg)
  end)
  it("finds no fields behind __index of a proxy node", function()
    local errs = refused(F.task({ nodeList = { setmetatable({}, { __index = voice(1) }) } }))
    local ok, msg = F.same_errors(errs, { { "N1", "nodeList[1].source" },
      { "N10", "nodeList[1].hangUpSms" }, { "N16", "nodeList[1].toSeat" } })
    assert(ok, msg)
  end)
  it("ignores a __len that lies and an __index that adds nodes", function()
    local list = setmetatable({ voice(1) }, { __len = function() return 5 end,
      __index = function() return voice(2) end })
    local body, _, decoded = F.encode(core, F.task({ nodeList = list }))
    assert(body, "refused")
    assert.are.equal(1, #decoded.nodeList)
  end)
  it("reads a task whose metatable is protected with __metatable", function()
    local t = setmetatable(F.task(), { __metatable = "locked", __index = raiser })
    assert.truthy(F.encode(core, t))
  end)
end)

describe("many errors and many nodes", function()
  local function nodes(n, make)
    local list = {}
    for i = 1, n do list[i] = make(i) end
    return list
  end
  local function broken() return voice(1, { source = 0 }) end
  it("caps 10000 broken nodes at 100 errors and sets truncated", function()
    local errs = refused(F.task({ nodeList = nodes(10000, broken) }))
    assert.are.equal(100, #errs)
    assert.is_true(errs.truncated)
  end)
  it("returns exactly 100 errors without truncated when there are 100", function()
    local errs = refused(F.task({ nodeList = nodes(100, broken) }))
    assert.are.equal(100, #errs)
    assert.is_nil(errs.truncated)
  end)
  it("sets truncated at the 101st error", function()
    local errs = refused(F.task({ nodeList = nodes(101, broken) }))
    assert.are.equal(100, #errs)
    assert.is_true(errs.truncated)
  end)
  it("caps 10000 empty nodes, a node with 10000 unknown keys, and 10000 unknown top keys",
    function()
      local errs = refused(F.task({ nodeList = nodes(10000, function() return {} end) }))
      assert.are.equal(100, #errs)
      assert.is_true(errs.truncated)
      local node = voice(1)
      for i = 1, 10000 do node["k" .. i] = i end
      errs = refused(F.task_nodes(node))
      assert.are.equal(100, #errs)
      assert.is_true(errs.truncated)
      local task = F.task()
      for i = 1, 10000 do task["k" .. i] = i end
      errs = refused(task)
      assert.are.equal(100, #errs)
      assert.is_true(errs.truncated)
    end)
  it("names the 10000th node in its path", function()
    local list = nodes(10000, function() return voice(1) end)
    list[10000] = broken()
    local ok, msg = F.same_errors(refused(F.task({ nodeList = list })),
      { { "N1", "nodeList[10000].source" } })
    assert(ok, msg)
  end)
  it("encodes 10000 valid nodes and decodes them back #big", function()
    local list = nodes(10000, function(i) return voice(i % 3 + 1, { voiceFileName = "n" .. i }) end)
    local task = F.task({ nodeList = list })
    local body, errs, decoded = F.encode(core, task)
    assert(body, F.describe_errs(errs))
    assert.are.equal(10000, #decoded.nodeList)
    local ok, msg = F.deep_equal(decoded, task)
    assert(ok, msg)
  end)
end)

describe("long values in errors", function()
  local function no_leak(errs, value)
    local leaked, msg = F.leaks(errs, value)
    assert(not leaked, msg)
  end
  it("refuses a 10 MB text without copying it into the error", function()
    local big = rep("The quick brown fox. ", 500000)
    local errs = refused(F.task_nodes(voice(3, { text = big })))
    expect(errs, "N5", "nodeList[1].text")
    no_leak(errs, big)
  end)
  it("finds one bad character at the end of a 10 MB baseFile", function()
    local big = rep("QUJD", 2621439) .. "QUJ!"
    local errs = refused(F.task_nodes(voice(2, { baseFile = big })))
    expect(errs, "N4", "nodeList[1].baseFile")
    no_leak(errs, big)
  end)
  it("finds one bad character in the middle of a 10 MB baseFile", function()
    local big = rep("QUJD", 1310720) .. "QU\nD" .. rep("QUJD", 1310719)
    local errs = refused(F.task_nodes(voice(2, { baseFile = big })))
    expect(errs, "N4", "nodeList[1].baseFile")
    no_leak(errs, big)
  end)
  it("refuses a 10 MB text with bad UTF-8 at the end #big", function()
    local big = rep("a", 10485760) .. "\255"
    local errs = refused(F.task_nodes(voice(3, { text = big })))
    expect(errs, "N5", "nodeList[1].text")
    no_leak(errs, big)
  end)
  local SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
  it("keeps a secret-looking smsContent out of the error", function()
    local errs = refused(F.task_nodes(voice(1, F.SMS, { smsContent = "Token " .. SECRET
      .. " ${secret}" })))
    expect(errs, "N11", "nodeList[1].smsContent")
    no_leak(errs, SECRET)
  end)
  it("keeps a secret-looking unknown value out of the error", function()
    local errs = refused(F.task({ api_secret = SECRET }))
    expect(errs, "T6", "api_secret")
    no_leak(errs, SECRET)
  end)
  it("keeps a 2000-character senderId out of the error", function()
    local s = rep(SECRET, 63)
    local errs = refused(F.task_nodes(voice(1, { senderId = s })))
    expect(errs, "N12", "nodeList[1].senderId")
    no_leak(errs, SECRET)
  end)
end)
