-- itnio.core encoding: round trips, the vendor's example, key order, numbers, strings,
-- absent values, argument checking; and sign(), consteq(), the module constants.
local core = require "itnio.core"
local cjson = require "cjson"
local F = require "support.fixtures"

local unpack = table.unpack or unpack
local NONE, SMS, SEAT, PASS = F.NONE, F.SMS, F.SEAT, { passthrough = true }
local voice, agent = F.voice, F.agent
local rep = string.rep
local ZH, EMOJI = "\228\184\173", "\240\159\152\128"

-- The vendor page's request body, verbatim.
local VENDOR_BODY = F.VENDOR_BODY
local VENDOR_EXPECTED = '{"keyId":299,"recallInterval":30,"recallNum":1,"recallType":0,'
  .. '"nodeList":[{"source":1,"voiceFileId":"120250811103439c1901f4c53b691b419ad8a143b.wav",'
  .. '"hangUpSms":0,"toSeat":1,"sipGroupId":1000038,"outboundControl":1,"calloutRate":1,'
  .. '"toSeatType":1,"delayTransfer":0}]}'
local AGENT_BODY = '{"keyId":299,"recallType":0,"recallInterval":30,"recallNum":1,'
  .. '"recallIntent":["101"],"nodeList":[{"scriptId":123}]}'
local BASE_EXPECTED = '{"keyId":299,"recallInterval":30,"recallNum":1,"recallType":0,'
  .. '"nodeList":[{"source":1,"voiceFileId":"vf-0001.wav","hangUpSms":0,"toSeat":0}]}'

local function encode_ok(task, opts)
  local body, errs, decoded = F.encode(core, task, opts)
  assert(body, "refused: " .. F.describe_errs(errs))
  assert.is_nil(errs)
  return body, decoded
end

-- The JSON text of the number written for key (first occurrence).
local function number_text(body, key)
  return body:match('"' .. key .. '":(%-?[%d%.eE%+%-]+)')
end

describe("itnio.core constants", function()
  it("has a semantic _VERSION string", function()
    assert.is_string(core._VERSION)
    assert.truthy(core._VERSION:match("^%d+%.%d+%.%d+"))
  end)
  it("caps error lists at MAX_ERRORS = 100", function()
    assert.are.equal(100, core.MAX_ERRORS)
  end)
end)

describe("itnio.core.sign", function()
  it("matches the vendor's test vector with a numeric timestamp", function()
    assert.are.equal("05d7a50893e22a5c4bb3216ae3396c7c",
                     core.sign("bDqJFiq9", "7bz1lzh9", 1630468800))
  end)
  it("matches the vendor's test vector with a string timestamp", function()
    assert.are.equal("05d7a50893e22a5c4bb3216ae3396c7c",
                     core.sign("bDqJFiq9", "7bz1lzh9", "1630468800"))
  end)
  it("treats a float timestamp with no fraction as the integer", function()
    assert.are.equal("05d7a50893e22a5c4bb3216ae3396c7c",
                     core.sign("bDqJFiq9", "7bz1lzh9", 1630468800.0))
  end)
  it("writes a float timestamp as its integer digits", function()
    assert.are.equal(core.sign("k", "s", "4294967296"), core.sign("k", "s", 2^32))
    assert.are.equal(core.sign("k", "s", "1000000000000000"), core.sign("k", "s", 1e15))
    assert.are.equal("ec277fbedfcf9797b3376cbe63d90a01", core.sign("k", "s", 2^53 - 1))
  end)
  it("signs an empty key and secret (MD5 of the timestamp alone)", function()
    assert.are.equal("cfcd208495d565ef66e7dff9f98764da", core.sign("", "", 0))
    assert.are.equal("cfcd208495d565ef66e7dff9f98764da", core.sign("", "", "0"))
  end)
  it("concatenates key, secret and timestamp in that order", function()
    assert.are.equal("449f2a4c69b93a105441494833db68e5", core.sign("a", "b", 0))
  end)
  it("returns 32 lowercase hex digits", function()
    local s = core.sign("KEY", "SECRET", 1)
    assert.are.equal(32, #s)
    assert.truthy(s:match("^[0-9a-f]+$"))
  end)
  -- Expected value computed with coreutils md5sum when this spec was written.
  it("signs a 1 MB key", function()
    assert.are.equal("4d332682c02e84657ac77788eb8e4abc",
                     core.sign(rep("k", 1048576), "s", 1630468800))
  end)
  it("agrees with coreutils md5sum (an independent MD5) on random keys and secrets", function()
    math.randomseed(7)
    for round = 1, 5 do
      local bytes = {}
      for i = 1, 1000 * round do bytes[i] = string.char(math.random(0, 255)) end
      local key, secret = table.concat(bytes, "", 1, 500 * round), table.concat(bytes, "", 500 * round + 1)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(key, secret, "1630468800")
      f:close()
      local p = assert(io.popen("md5sum < " .. path))
      local want = p:read("*a"):match("^(%x+)")
      p:close()
      os.remove(path)
      assert.are.equal(want, core.sign(key, secret, 1630468800))
    end
  end)

  local bad = {
    { "a number key (not coerced)", { 123, "s", 1, n = 3 }, 1 },
    { "a nil key", { nil, "s", 1, n = 3 }, 1 },
    { "a table key", { {}, "s", 1, n = 3 }, 1 },
    { "a boolean key", { true, "s", 1, n = 3 }, 1 },
    { "a number secret (not coerced)", { "k", 123, 1, n = 3 }, 2 },
    { "a nil secret", { "k", nil, 1, n = 3 }, 2 },
    { "a table secret", { "k", {}, 1, n = 3 }, 2 },
    { "a negative timestamp", { "k", "s", -1, n = 3 }, 3 },
    { "a fractional timestamp", { "k", "s", 1.5, n = 3 }, 3 },
    { "a NaN timestamp", { "k", "s", 0 / 0, n = 3 }, 3 },
    { "an infinite timestamp", { "k", "s", 1 / 0, n = 3 }, 3 },
    { "an empty timestamp string", { "k", "s", "", n = 3 }, 3 },
    { "a timestamp string with a letter", { "k", "s", "12a", n = 3 }, 3 },
    { "a negative timestamp string", { "k", "s", "-1", n = 3 }, 3 },
    { "a timestamp string with a space", { "k", "s", " 1", n = 3 }, 3 },
    { "a timestamp string with a fraction", { "k", "s", "1.0", n = 3 }, 3 },
    { "a timestamp string in exponent form", { "k", "s", "1e9", n = 3 }, 3 },
    { "a table timestamp", { "k", "s", {}, n = 3 }, 3 },
    { "a boolean timestamp", { "k", "s", true, n = 3 }, 3 },
    { "a nil timestamp", { "k", "s", nil, n = 3 }, 3 },
  }
  for _, row in ipairs(bad) do
    it("raises bad argument #" .. row[3] .. " for " .. row[1], function()
      local ok, msg = pcall(core.sign, unpack(row[2], 1, row[2].n))
      assert.is_false(ok)
      assert.is_string(msg)
      assert.truthy(msg:find("bad argument #" .. row[3], 1, true), msg)
    end)
  end
end)

describe("itnio.core.consteq", function()
  local rows = {
    { "equal strings", "abc", "abc", true },
    { "two empty strings", "", "", true },
    { "strings differing in the last byte", "abc", "abd", false },
    { "a prefix", "abc", "abcd", false },
    { "empty and non-empty", "", "a", false },
    { "equal strings with NUL bytes", "a\0b", "a\0b", true },
    { "strings differing after a NUL", "a\0b", "a\0c", false },
    { "equal long strings", rep("x", 100000), rep("x", 100000), true },
    { "long strings differing at the end", rep("x", 100000), rep("x", 99999) .. "y", false },
    { "equal digests in different case", "05d7a508", "05D7A508", false },
  }
  for _, row in ipairs(rows) do
    it("answers " .. tostring(row[4]) .. " for " .. row[1], function()
      assert.are.equal(row[4], core.consteq(row[2], row[3]))
    end)
  end
end)

describe("itnio.core.encode arguments", function()
  local raising = {
    { "no task", {}, 2 }, { "a string task", { "task" }, 2 }, { "a number task", { 5 }, 2 },
    { "a boolean task", { true }, 2 }, { "a string opts", { {}, "x" }, 3 },
    { "a number opts", { {}, 5 }, 3 }, { "a boolean opts", { {}, true }, 3 },
  }
  for _, row in ipairs(raising) do
    it("raises bad argument #" .. row[3] .. " for " .. row[1], function()
      local ok, msg = pcall(core.encode, "recall_update", unpack(row[2]))
      assert.is_false(ok)
      assert.truthy(msg:find("bad argument #" .. row[3], 1, true), msg)
    end)
  end
  for _, p in ipairs({ "yes", 1, {} }) do
    it("raises for opts.passthrough = " .. type(p), function()
      local ok, msg = pcall(core.encode, "recall_update", F.task(), { passthrough = p })
      assert.is_false(ok)
      assert.truthy(msg:find("bad argument #3", 1, true) and msg:find("passthrough", 1, true), msg)
    end)
  end
  it("accepts no opts, empty opts and explicit nil opts alike", function()
    assert.are.equal(BASE_EXPECTED, (core.encode("recall_update", F.task())))
    assert.are.equal(BASE_EXPECTED, (core.encode("recall_update", F.task(), {})))
    assert.are.equal(BASE_EXPECTED, (core.encode("recall_update", F.task(), nil)))
  end)
end)

describe("the vendor's examples", function()
  it("encodes the vendor's example body (with its nulls) to the exact compact body", function()
    local input = cjson.decode(VENDOR_BODY)
    local body = encode_ok(input)
    assert.are.equal(VENDOR_EXPECTED, body)
  end)
  it("round-trips the vendor's example minus its nulls", function()
    local input = cjson.decode(VENDOR_BODY)
    local _, decoded = encode_ok(input)
    local ok, msg = F.deep_equal(decoded, F.strip(input))
    assert(ok, msg)
  end)
  it("encodes the vendor's agent-node example in our key order", function()
    local body = encode_ok(cjson.decode(AGENT_BODY))
    assert.are.equal('{"keyId":299,"recallInterval":30,"recallNum":1,"recallType":0,'
      .. '"recallIntent":["101"],"nodeList":[{"scriptId":123}]}', body)
  end)
end)

describe("key order and layout", function()
  it("writes every node field in the fixed order", function()
    local node = { delayTransfer = 5, toSeatKey = "*", toSeatType = 2, calloutRate = 4,
      outboundControl = 1, sipGroupId = 3, toSeat = 1, ringPush = 0, failedPush = 1,
      successPushTime = 2, successPush = 1, feedbackValue = "1", feedbackPush = 1,
      senderId = "S", smsContent = "s", idxSmsAppId = "i", hangUpSms = 1, accent = 0,
      ssmlGender = 2, speakingRate = 1.5, lan = "en", text = "t", baseFile = "QUJD",
      uploadName = "u.wav", voiceFileName = "n.wav", voiceFileId = "v", source = 3 }
    local body = encode_ok(F.task_nodes(node))
    assert.are.equal('{"keyId":299,"recallInterval":30,"recallNum":1,"recallType":0,'
      .. '"nodeList":[{"source":3,"voiceFileId":"v","voiceFileName":"n.wav",'
      .. '"uploadName":"u.wav","baseFile":"QUJD","text":"t","lan":"en","speakingRate":1.5,'
      .. '"ssmlGender":2,"accent":0,"hangUpSms":1,"idxSmsAppId":"i","smsContent":"s",'
      .. '"senderId":"S","feedbackPush":1,"feedbackValue":"1","successPush":1,'
      .. '"successPushTime":2,"failedPush":1,"ringPush":0,"toSeat":1,"sipGroupId":3,'
      .. '"outboundControl":1,"calloutRate":4,"toSeatType":2,"toSeatKey":"*",'
      .. '"delayTransfer":5}]}', body)
  end)
  it("writes recallIntent before nodeList and passthrough keys last", function()
    local task = { aa = "x", nodeList = { { zz = true, scriptId = 9 } },
      recallIntent = { "101", "102" }, recallType = 1, recallNum = 3, recallInterval = 2,
      keyId = 1 }
    assert.are.equal('{"keyId":1,"recallInterval":2,"recallNum":3,"recallType":1,'
      .. '"recallIntent":["101","102"],"nodeList":[{"scriptId":9,"zz":true}],"aa":"x"}',
      encode_ok(task, PASS))
  end)
  it("writes several passthrough keys after all known keys", function()
    local body = encode_ok(F.task({ p1 = 1, p2 = "two", p3 = false }), PASS)
    local last = body:find('"nodeList"', 1, true)
    for _, k in ipairs({ "p1", "p2", "p3" }) do
      assert.truthy(body:find('"' .. k .. '"', 1, true) > last, k .. " in " .. body)
    end
  end)
  it("writes empty arrays as []", function()
    local body = encode_ok(F.task({ recallIntent = {}, nodeList = {} }))
    assert.are.equal('{"keyId":299,"recallInterval":30,"recallNum":1,"recallType":0,'
      .. '"recallIntent":[],"nodeList":[]}', body)
  end)
  it("escapes passthrough key names", function()
    local _, decoded = encode_ok(F.task({ ['we"ird\\key'] = 1 }), PASS)
    assert.are.equal(1, decoded['we"ird\\key'])
  end)
end)

describe("numbers", function()
  local nz = -0.0
  local rows = {
    { "an integer field given as 30.0", F.task({ keyId = 30.0 }), "keyId", "30" },
    { "keyId 2^53-1", F.task({ keyId = 2^53 - 1 }), "keyId", "9007199254740991" },
    { "keyId 1e15", F.task({ keyId = 1e15 }), "keyId", "1000000000000000" },
    { "sipGroupId 2^32", F.task_nodes(voice(1, SEAT, { sipGroupId = 2^32 })),
      "sipGroupId", "4294967296" },
    { "recallType -0.0", F.task({ recallType = nz }), "recallType", "0" },
    { "accent -0.0", F.task_nodes(voice(3, { accent = nz })), "accent", "0" },
    { "speakingRate 1.5", F.task_nodes(voice(3, { speakingRate = 1.5 })), "speakingRate", "1.5" },
    { "speakingRate 0.25", F.task_nodes(voice(3, { speakingRate = 0.25 })), "speakingRate", "0.25" },
    { "speakingRate 1.1", F.task_nodes(voice(3, { speakingRate = 1.1 })), "speakingRate", "1.1" },
    { "speakingRate 4", F.task_nodes(voice(3, { speakingRate = 4 })), "speakingRate", "4" },
    { "passthrough 0.1", F.task({ x = 0.1 }), "x", "0.1", PASS },
    { "passthrough -2.5", F.task({ x = -2.5 }), "x", "-2.5", PASS },
    { "passthrough 123456789.125", F.task({ x = 123456789.125 }), "x", "123456789.125", PASS },
    { "passthrough 42", F.task({ x = 42 }), "x", "42", PASS },
    { "passthrough 1e21", F.task({ x = 1e21 }), "x", "1e+21", PASS },
    { "passthrough 5e-324 (the smallest denormal)", F.task({ x = 5e-324 }), "x", "5e-324", PASS },
  }
  for _, row in ipairs(rows) do
    it("writes " .. row[1] .. " as " .. row[4], function()
      local body = encode_ok(row[2], row[5])
      assert.are.equal(row[4], number_text(body, row[3]))
    end)
  end
  local exact = {
    { "speakingRate 1/3", F.task_nodes(voice(3, { speakingRate = 1 / 3 })), "speakingRate", 1 / 3 },
    { "speakingRate 2.0", F.task_nodes(voice(3, { speakingRate = 2.0 })), "speakingRate", 2 },
    { "passthrough 1/3", F.task({ x = 1 / 3 }), "x", 1 / 3, PASS },
    { "passthrough 1e300", F.task({ x = 1e300 }), "x", 1e300, PASS },
    { "passthrough 5e-324", F.task({ x = 5e-324 }), "x", 5e-324, PASS },
    { "passthrough 2.2250738585072014e-308", F.task({ x = 2.2250738585072014e-308 }), "x",
      2.2250738585072014e-308, PASS },
  }
  for _, row in ipairs(exact) do
    it("writes " .. row[1] .. " in a form that reads back exactly", function()
      local body = encode_ok(row[2], row[5])
      local text = number_text(body, row[3])
      assert.is_string(text)
      assert.are.equal(row[4], tonumber(text))
      assert.truthy(#text <= 24, text)
    end)
  end
  it("writes 1/3 with at most 17 significant digits", function()
    local text = number_text(encode_ok(F.task({ x = 1 / 3 }), PASS), "x")
    assert.truthy(#text:gsub("[^%d]", "") <= 17, text)
  end)
end)

describe("strings", function()
  it("escapes quotes, backslashes and control characters per RFC 8259", function()
    local s = 'q"b\\s/n\nt\tr\rb\bf\f' .. "\1\31" .. " \195\169" .. ZH .. EMOJI
    local body = encode_ok(F.task_nodes(voice(1, { voiceFileName = s })))
    local got = body:match('"voiceFileName":(".-[^\\]")[,}]')
    got = got:gsub("\\u00(%x%x)", function(h) return "\\u00" .. h:lower() end)
    assert.are.equal('"q\\"b\\\\s/n\\nt\\tr\\rb\\bf\\f\\u0001\\u001f'
      .. " \195\169" .. ZH .. EMOJI .. '"', got)
  end)
  it("round-trips every ASCII character", function()
    local chars = {}
    for b = 1, 127 do chars[#chars + 1] = string.char(b) end
    local s = table.concat(chars)
    local _, decoded = encode_ok(F.task_nodes(voice(1, { voiceFileName = s })))
    assert.are.equal(s, decoded.nodeList[1].voiceFileName)
  end)
  it("writes the edges of Unicode as they are", function()
    local s = F.utf8char(0x80) .. F.utf8char(0x7FF) .. F.utf8char(0x800)
      .. F.utf8char(0xD7FF) .. F.utf8char(0xE000) .. F.utf8char(0xFFFF)
      .. F.utf8char(0x10000) .. F.utf8char(0x10FFFF)
    local body, decoded = encode_ok(F.task_nodes(voice(3, { text = s })))
    assert.truthy(body:find(s, 1, true))
    assert.are.equal(s, decoded.nodeList[1].text)
  end)
end)

describe("absent values", function()
  it("leaves out nil and cjson.null", function()
    assert.are.equal(BASE_EXPECTED, encode_ok(F.task({ recallIntent = cjson.null,
      nodeList = { voice(1, { text = cjson.null, senderId = cjson.null }) } })))
  end)
  it("leaves out the caller's opts.null sentinel", function()
    local NULL = {}
    local task = F.task()
    task.recallIntent = NULL
    task.nodeList[1].voiceFileName = NULL
    assert.are.equal(BASE_EXPECTED, encode_ok(task, { null = NULL }))
  end)
  it("treats a required field set to the sentinel as missing", function()
    local NULL = {}
    local task = F.task()
    task.keyId = NULL
    local body, errs = F.encode(core, task, { null = NULL })
    assert.is_nil(body)
    local ok, msg = F.same_errors(errs, { { "T1", "keyId" } })
    assert(ok, msg)
  end)
  it("checks the sentinel table as a value when it is not given as opts.null", function()
    local task = F.task()
    task.nodeList[1].voiceFileName = {}
    local body, errs = F.encode(core, task)
    assert.is_nil(body)
    assert.truthy(F.find_error(errs, "N23", "nodeList[1].voiceFileName"))
  end)
end)

describe("round trips", function()
  local all10 = {}
  for i = 1, 10 do all10[i] = "${text" .. i .. "}" end
  local HANG = { hangUpSms = 1, smsContent = "Hello ${text1}" }
  local tasks = {
    { "a source 1 node", F.task() },
    { "a source 2 node", F.task_nodes(voice(2)) },
    { "a source 3 node with voice options",
      F.task_nodes(voice(3, { speakingRate = 1.25, ssmlGender = 2, accent = 3 })) },
    { "an agent node with intents", F.task({ recallIntent = { "101", "102" },
      nodeList = { agent() } }) },
    { "feedbackPush only", F.task_nodes(voice(1, HANG, { feedbackPush = 1, feedbackValue = "3" })) },
    { "successPush only", F.task_nodes(voice(1, HANG, { successPush = 1, successPushTime = 9999 })) },
    { "failedPush only", F.task_nodes(voice(1, HANG, { failedPush = 1, successPush = 0 })) },
    { "ringPush only", F.task_nodes(voice(1, HANG, { ringPush = 1 })) },
    { "all push flags", F.task_nodes(voice(2, HANG, { feedbackPush = 1, feedbackValue = "0",
      successPush = 1, successPushTime = 1, failedPush = 1, ringPush = 1, senderId = "ITNIO" })) },
    { "a transfer after the group call", F.task_nodes(voice(1, SEAT)) },
    { "a transfer on keypress", F.task_nodes(voice(3, SEAT, { toSeatType = 2, toSeatKey = "#",
      delayTransfer = 5, calloutRate = 100 })) },
    { "transfer off with SMS on", F.task_nodes(voice(3, SMS, { toSeat = 0 })) },
    { "unicode text", F.task_nodes(voice(3, { text = ZH .. "文 Привет مرحبا e\204\129 "
      .. EMOJI .. " \240\159\145\141\240\159\143\189", lan = "zh-CN" })) },
    { "1000-character Chinese text", F.task_nodes(voice(3, { text = rep(ZH, 1000) })) },
    { "1000 emoji as text", F.task_nodes(voice(3, { text = rep(EMOJI, 1000) })) },
    { "every SMS placeholder", F.task_nodes(voice(1, HANG, { ringPush = 1,
      smsContent = table.concat(all10, ",") })) },
    { "mixed nodes", F.task_nodes(voice(1, SMS), voice(2, SEAT), voice(3), agent()) },
    { "an empty nodeList", F.task({ nodeList = {} }) },
    { "no nodeList", F.task({ nodeList = NONE }) },
    { "the optional strings", F.task_nodes(voice(1, { voiceFileName = "a.wav",
      idxSmsAppId = "42", senderId = rep("s", 32) })) },
    { "strings needing escapes", F.task_nodes(voice(3, { text = 'say "hi"\\\n\t/</script>' })) },
    { "nulls mixed in", F.task({ recallIntent = cjson.null,
      nodeList = { voice(1, { text = cjson.null, toSeatKey = cjson.null }) } }) },
    { "top-level maxima", F.task({ keyId = 2^53 - 1, recallInterval = 1440, recallNum = 10,
      recallType = 1 }) },
    { "node maxima", F.task_nodes(voice(1, SEAT, { sipGroupId = 2^31, accent = 2^40,
      delayTransfer = 86400, speakingRate = 4 })) },
    { "passthrough keys", F.task({ extra = "x", nodeList = { voice(1, { more = 1.5 }) } }), PASS },
  }
  for _, row in ipairs(tasks) do
    it("gives back " .. row[1], function()
      local body, decoded = encode_ok(row[2], row[3])
      assert.falsy(body:find(":null", 1, true), "a null was written")
      local ok, msg = F.deep_equal(decoded, F.strip(row[2]))
      assert(ok, msg)
    end)
  end

  it("gives back a 10 MB baseFile #big", function()
    local big = rep("QUJD", 2621440)
    local body, decoded = encode_ok(F.task_nodes(voice(2, { baseFile = big })))
    assert.truthy(#body > #big)
    assert.are.equal(10485760, #decoded.nodeList[1].baseFile)
    assert.truthy(decoded.nodeList[1].baseFile == big)
  end)

  it("writes compact JSON with no whitespace outside strings", function()
    local body = encode_ok(F.task_nodes(voice(1, SEAT, { hangUpSms = 1, ringPush = 1,
      smsContent = "Code:${text1}" }), agent()), { passthrough = true })
    assert.falsy(body:find("%s"), body)
  end)

  it("does not change the caller's table", function()
    local task = F.task_nodes(voice(1, SMS), voice(3, { voiceFileName = cjson.null }), agent())
    local before = F.copy(task)
    encode_ok(task)
    local ok, msg = F.deep_equal(task, before)
    assert(ok, msg)
  end)

  it("gives the same body on every call", function()
    local task = F.task_nodes(voice(1, SMS), voice(2, SEAT), agent())
    assert.are.equal(encode_ok(task), encode_ok(task))
  end)
end)

-- The encoder keeps one spare output buffer per Lua state and reuses it call after call.
describe("the reused output buffer", function()
  local small = F.task_nodes(voice(1, SMS))
  local small_body = encode_ok(small)

  it("gives each call its own body, whatever came before", function()
    local big = encode_ok(F.task_nodes(voice(2, { baseFile = rep("QUJD", 40000) })))   -- > 64 KiB
    local mid = encode_ok(F.task_nodes(voice(1, SMS), voice(2, SEAT), agent()))
    assert.are.equal(small_body, encode_ok(small))
    assert.truthy(#big > 160000 and #mid > #small_body)
    assert.are.equal(big, encode_ok(F.task_nodes(voice(2, { baseFile = rep("QUJD", 40000) }))))
  end)

  it("is not left half-written by a refused task or a raise", function()
    local body, errs = core.encode("recall_update", F.task({ keyId = "x" }))
    assert.is_nil(body)
    assert.truthy(#errs >= 1)
    assert.is_false((pcall(core.encode, "recall_update", small, { passthrough = 1 })))
    assert.are.equal(small_body, encode_ok(small))
  end)

  it("serves an encode that a finalizer runs while another encode is under way", function()
    -- In a Lua of its own, with this one's paths: busted's large heap makes the collector's
    -- cycles too long for finalizers to fall inside an encode.
    local lua = require("support.shell").quote(require("support.shell").lua)
    local paths = ("package.path = %q; package.cpath = %q"):format(package.path, package.cpath)
    local cmd = lua .. " -e '" .. paths:gsub("'", "'\\''")
      .. "' spec/support/nested_encode.lua 2>&1; echo __rc=$?"
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("*a")
    p:close()
    local seen, nested, wrong = out:match("^(%d+)%s+(%d+)%s+(%d+)%s+__rc=0%s*$")
    assert(seen, out)
    assert.are.equal(8000, tonumber(seen))
    assert.truthy(tonumber(nested) > 0, "no finalizer ran inside an encode: " .. out)
    assert.are.equal(0, tonumber(wrong))
  end)
end)
