-- Every rule of doc/rules.md (T1..T6, N1..N24, A1..A3): accepted and refused cases.
-- A refused row names the only {rule, field} pairs the encoder may report (row.also adds
-- more); an accepted row must encode, and decoding the body must give the input back.
local core = require "itnio.core"
local cjson = require "cjson"
local F = require "support.fixtures"

local NONE, SMS, SEAT, PASS = F.NONE, F.SMS, F.SEAT, { passthrough = true }
local voice, agent, with = F.voice, F.agent, F.with
local P, P2, P3 = "nodeList[1].", "nodeList[2].", "nodeList[3]."
local ZH, EURO, E_ACUTE, EMOJI = "\228\184\173", "\226\130\172", "\195\169", "\240\159\152\128"
local rep = string.rep
local HANG = { hangUpSms = 1, smsContent = "Hi" }           -- SMS on, no push flag yet
local KEYED = with(SEAT, { toSeatType = 2, toSeatKey = "#" })

local function T(ov) return F.task(ov) end
local function V(src, ...) return F.task_nodes(voice(src, ...)) end
local function A(...) return F.task_nodes(agent(...)) end

local function run(group, rows)
  describe(group, function()
    for _, row in ipairs(rows) do
      local name, task, rule, field = row[1], row[2], row[3], row[4]
      if rule then
        it("refuses " .. name .. " as " .. rule .. " at " .. field, function()
          local body, errs = F.encode(core, task, row.opts)
          assert.is_nil(body)
          local want = { { rule, field } }
          for _, x in ipairs(row.also or {}) do want[#want + 1] = x end
          local ok, msg = F.same_errors(errs, want)
          assert(ok, msg)
          assert.is_nil(errs.truncated)
          ok, msg = F.check_messages(errs)
          assert(ok, msg)
        end)
      else
        it("accepts " .. name, function()
          local body, errs, decoded = F.encode(core, task, row.opts)
          assert(body, "refused: " .. F.describe_errs(errs))
          assert.is_nil(errs)
          local ok, msg = F.deep_equal(decoded, F.strip(task))
          assert(ok, msg)
        end)
      end
    end
  end)
end

describe("itnio.core rules", function()
  run("T1 keyId", {
    { "keyId 1", T{ keyId = 1 } },
    { "keyId 2^53-1", T{ keyId = 2^53 - 1 } },
    { "keyId 30.0, a float with no fraction", T{ keyId = 30.0 } },
    { "a missing keyId", T{ keyId = NONE }, "T1", "keyId" },
    { "keyId cjson.null (absent)", T{ keyId = cjson.null }, "T1", "keyId" },
    { "keyId 0", T{ keyId = 0 }, "T1", "keyId" },
    { "keyId -1", T{ keyId = -1 }, "T1", "keyId" },
    { "keyId 1.5", T{ keyId = 1.5 }, "T1", "keyId" },
    { 'keyId "5" (never coerced)', T{ keyId = "5" }, "T1", "keyId" },
    { "keyId true", T{ keyId = true }, "T1", "keyId" },
    { "keyId 2^53 (float)", T{ keyId = 2^53 }, "T1", "keyId" },
  })

  run("T2 recallInterval", {
    { "recallInterval 1", T{ recallInterval = 1 } },
    { "recallInterval 1440", T{ recallInterval = 1440 } },
    { "recallInterval 60.0", T{ recallInterval = 60.0 } },
    { "a missing recallInterval", T{ recallInterval = NONE }, "T2", "recallInterval" },
    { "recallInterval 0", T{ recallInterval = 0 }, "T2", "recallInterval" },
    { "recallInterval 1441", T{ recallInterval = 1441 }, "T2", "recallInterval" },
    { "recallInterval 30.5", T{ recallInterval = 30.5 }, "T2", "recallInterval" },
    { 'recallInterval "30"', T{ recallInterval = "30" }, "T2", "recallInterval" },
  })

  run("T3 recallNum", {
    { "recallNum 1", T{ recallNum = 1 } },
    { "recallNum 10", T{ recallNum = 10 } },
    { "a missing recallNum", T{ recallNum = NONE }, "T3", "recallNum" },
    { "recallNum 0", T{ recallNum = 0 }, "T3", "recallNum" },
    { "recallNum 11", T{ recallNum = 11 }, "T3", "recallNum" },
    { 'recallNum "1"', T{ recallNum = "1" }, "T3", "recallNum" },
  })

  run("T4 recallType", {
    { "recallType 0", T{ recallType = 0 } },
    { "recallType 1", T{ recallType = 1 } },
    { "a missing recallType", T{ recallType = NONE }, "T4", "recallType" },
    { "recallType 2", T{ recallType = 2 }, "T4", "recallType" },
    { "recallType -1", T{ recallType = -1 }, "T4", "recallType" },
    { "recallType 0.5", T{ recallType = 0.5 }, "T4", "recallType" },
    { "recallType false", T{ recallType = false }, "T4", "recallType" },
  })

  local v = voice(1)
  run("T5 nodeList", {
    { "no nodeList", T{ nodeList = NONE } },
    { "nodeList cjson.null", T{ nodeList = cjson.null } },
    { "an empty nodeList", T{ nodeList = {} } },
    { "nodes of every kind", F.task_nodes(voice(1), voice(2), voice(3), agent()) },
    { 'nodeList "nodes"', T{ nodeList = "nodes" }, "T5", "nodeList" },
    { "nodeList 5", T{ nodeList = 5 }, "T5", "nodeList" },
    { "nodeList true", T{ nodeList = true }, "T5", "nodeList" },
    { "a nodeList that is a map", T{ nodeList = { a = v } }, "T5", "nodeList" },
    { "a nodeList with a string key besides the items", T{ nodeList = { v, x = v } },
      "T5", "nodeList" },
    { "a nodeList with a hole", T{ nodeList = { [1] = v, [3] = v } }, "T5", "nodeList" },
    { "a nodeList starting at 2", T{ nodeList = { [2] = v } }, "T5", "nodeList" },
    { "a nodeList with key 0", T{ nodeList = { [0] = v, [1] = v } }, "T5", "nodeList" },
    { "a nodeList with key -1", T{ nodeList = { [-1] = v, [1] = v } }, "T5", "nodeList" },
    { "a nodeList with key 1.5", T{ nodeList = { [1] = v, [1.5] = v } }, "T5", "nodeList" },
    { "a string node", T{ nodeList = { v, "x" } }, "T5", "nodeList[2]" },
    { "a number node", T{ nodeList = { 7 } }, "T5", "nodeList[1]" },
    { "a boolean node", T{ nodeList = { v, v, false } }, "T5", "nodeList[3]" },
  })

  run("T6 unknown top-level keys", {
    { "an unknown key", T{ bogus = 1 }, "T6", "bogus" },
    { "a typo of keyId", T{ keyid = 299 }, "T6", "keyid" },
    { "an unknown key with passthrough = false", T{ bogus = 1 }, "T6", "bogus",
      opts = { passthrough = false } },
    { "a passthrough table value", T{ bogus = { 1 } }, "T6", "bogus", opts = PASS },
    { "a passthrough function value", T{ bogus = print }, "T6", "bogus", opts = PASS },
    { "a passthrough string", T{ extra = "x" }, opts = PASS },
    { "a passthrough number", T{ extra = 42 }, opts = PASS },
    { "a passthrough boolean", T{ extra = false }, opts = PASS },
  })

  run("A1 recallIntent", {
    { 'recallIntent {"101"}', T{ recallIntent = { "101" } } },
    { "an empty recallIntent", T{ recallIntent = {} } },
    { "three intents", T{ recallIntent = { "101", "102", ZH } } },
    { "recallIntent cjson.null", T{ recallIntent = cjson.null } },
    { 'recallIntent "101"', T{ recallIntent = "101" }, "A1", "recallIntent" },
    { "recallIntent 101", T{ recallIntent = 101 }, "A1", "recallIntent" },
    { "a recallIntent map", T{ recallIntent = { x = "101" } }, "A1", "recallIntent" },
    { "a recallIntent with a hole", T{ recallIntent = { [1] = "a", [3] = "b" } },
      "A1", "recallIntent" },
    { "a number intent", T{ recallIntent = { 101 } }, "A1", "recallIntent[1]" },
    { "a boolean intent", T{ recallIntent = { "101", true } }, "A1", "recallIntent[2]" },
    { "a table intent", T{ recallIntent = { "101", {} } }, "A1", "recallIntent[2]" },
    { "an intent that is not UTF-8", T{ recallIntent = { "\255" } }, "A1", "recallIntent[1]" },
    { "an intent with a NUL", T{ recallIntent = { "a\0b" } }, "A1", "recallIntent[1]" },
  })

  run("N1 source", {
    { "source 1", V(1) }, { "source 2", V(2) }, { "source 3", V(3) },
    { "a missing source", V(1, { source = NONE }), "N1", P .. "source" },
    { "source cjson.null", V(1, { source = cjson.null }), "N1", P .. "source" },
    { "source 0", V(1, { source = 0 }), "N1", P .. "source" },
    { "source 4", V(1, { source = 4 }), "N1", P .. "source" },
    { "source 1.5", V(1, { source = 1.5 }), "N1", P .. "source" },
    { 'source "1"', V(1, { source = "1" }), "N1", P .. "source" },
  })

  run("N2 voiceFileId", {
    { "a UTF-8 voiceFileId", V(1, { voiceFileId = ZH .. ".wav" }) },
    { "a voiceFileId given with source 3", V(3, { voiceFileId = "vf-9.wav" }) },
    { "source 1 without voiceFileId", V(1, { voiceFileId = NONE }), "N2", P .. "voiceFileId" },
    { "an empty voiceFileId with source 1", V(1, { voiceFileId = "" }), "N2", P .. "voiceFileId" },
    { "voiceFileId 123", V(1, { voiceFileId = 123 }), "N2", P .. "voiceFileId" },
    { "an overlong voiceFileId", V(1, { voiceFileId = "\192\175" }), "N2", P .. "voiceFileId" },
  })

  run("N3 uploadName", {
    { "uploadName of 5 characters", V(2, { uploadName = "a.wav" }) },
    { "uploadName of 32 characters", V(2, { uploadName = rep("a", 32) }) },
    { "uploadName of 5 Chinese characters (15 bytes)", V(2, { uploadName = rep(ZH, 5) }) },
    { "uploadName of 32 two-byte characters", V(2, { uploadName = rep(E_ACUTE, 32) }) },
    { "source 2 without uploadName", V(2, { uploadName = NONE }), "N3", P .. "uploadName" },
    { "uploadName of 4 characters", V(2, { uploadName = "a.wa" }), "N3", P .. "uploadName" },
    { "an empty uploadName", V(2, { uploadName = "" }), "N3", P .. "uploadName" },
    { "uploadName of 33 characters", V(2, { uploadName = rep("a", 33) }), "N3", P .. "uploadName" },
    { "uploadName of 2 Chinese characters (6 bytes)", V(2, { uploadName = rep(ZH, 2) }),
      "N3", P .. "uploadName" },
    { "uploadName of 33 two-byte characters", V(2, { uploadName = rep(E_ACUTE, 33) }),
      "N3", P .. "uploadName" },
    { "uploadName 12345", V(2, { uploadName = 12345 }), "N3", P .. "uploadName" },
  })

  local function b64(name, s, ok)
    if ok then return { "baseFile " .. name, V(2, { baseFile = s }) } end
    return { "baseFile " .. name, V(2, { baseFile = s }), "N4", P .. "baseFile" }
  end
  run("N4 baseFile", {
    b64('"QQ=="', "QQ==", true), b64('"QUI="', "QUI=", true), b64('"QUJD"', "QUJD", true),
    b64("with + and /", "+/+/AAAA", true), b64("of 4000 characters", rep("QUJD", 1000), true),
    { "source 2 without baseFile", V(2, { baseFile = NONE }), "N4", P .. "baseFile" },
    b64("empty", ""), b64("of length 3", "QUJ"), b64('"QQ=" (short padding)', "QQ="),
    b64("with padding inside", "QU=D"), b64("with padding then data", "QQ==QQ=="),
    b64("starting with padding", "=QUJ"), b64("with a trailing newline", "QUJDQUJD\n"),
    b64("with a line break inside", "QUJD\r\nQUJD"), b64("with a space", "QU D"),
    b64("with URL-safe -", "QUJ-"), b64("with URL-safe _", "QUJ_"), b64("with a dot", "QUJ."),
    b64("with a NUL", "QU\0D"), b64("with a non-ASCII byte", "QU" .. E_ACUTE),
    { "baseFile 42", V(2, { baseFile = 42 }), "N4", P .. "baseFile" },
  })

  run("N5 text", {
    { "text of 1000 ASCII characters", V(3, { text = rep("a", 1000) }) },
    { "text of 1000 Chinese characters (3000 bytes)", V(3, { text = rep(ZH, 1000) }) },
    { "text of 999 ASCII and one emoji", V(3, { text = rep("a", 999) .. EMOJI }) },
    { "a text given with source 1", V(1, { text = "hi" }) },
    { "source 3 without text", V(3, { text = NONE }), "N5", P .. "text" },
    { "an empty text with source 3", V(3, { text = "" }), "N5", P .. "text" },
    { "text of 1001 ASCII characters", V(3, { text = rep("a", 1001) }), "N5", P .. "text" },
    { "text of 1001 Chinese characters", V(3, { text = rep(ZH, 1001) }), "N5", P .. "text" },
    { "text 42", V(3, { text = 42 }), "N5", P .. "text" },
    { "a text with a surrogate", V(3, { text = "a\237\160\128" }), "N5", P .. "text" },
  })

  run("N6 lan", {
    { 'lan "zh-CN"', V(3, { lan = "zh-CN" }) },
    { "a lan given with source 1", V(1, { lan = "en-US" }) },
    { "source 3 without lan", V(3, { lan = NONE }), "N6", P .. "lan" },
    { "an empty lan with source 3", V(3, { lan = "" }), "N6", P .. "lan" },
    { "lan 1", V(3, { lan = 1 }), "N6", P .. "lan" },
  })

  local function rate(x, ok)
    local name = "speakingRate " .. tostring(x)
    if ok then return { name, V(3, { speakingRate = x }) } end
    return { name, V(3, { speakingRate = x }), "N7", P .. "speakingRate" }
  end
  run("N7 speakingRate", {
    rate(0.25, true), rate(4, true), rate(1, true), rate(1.5, true), rate(2.0, true),
    rate(0.24), rate(4.01), rate(0), rate(-1), rate("1"), rate(true),
  })

  run("N8 ssmlGender", {
    { "ssmlGender 1", V(3, { ssmlGender = 1 }) }, { "ssmlGender 2", V(3, { ssmlGender = 2 }) },
    { "ssmlGender 0", V(3, { ssmlGender = 0 }), "N8", P .. "ssmlGender" },
    { "ssmlGender 3", V(3, { ssmlGender = 3 }), "N8", P .. "ssmlGender" },
    { "ssmlGender 1.5", V(3, { ssmlGender = 1.5 }), "N8", P .. "ssmlGender" },
    { 'ssmlGender "2"', V(3, { ssmlGender = "2" }), "N8", P .. "ssmlGender" },
  })

  run("N9 accent", {
    { "accent 0", V(3, { accent = 0 }) }, { "accent 1000", V(3, { accent = 1000 }) },
    { "accent -1", V(3, { accent = -1 }), "N9", P .. "accent" },
    { "accent 0.5", V(3, { accent = 0.5 }), "N9", P .. "accent" },
    { 'accent "1"', V(3, { accent = "1" }), "N9", P .. "accent" },
  })

  run("N10 hangUpSms", {
    { "hangUpSms 0", V(1, { hangUpSms = 0 }) }, { "hangUpSms 1", V(1, SMS) },
    { "a missing hangUpSms", V(1, { hangUpSms = NONE }), "N10", P .. "hangUpSms" },
    { "hangUpSms 2", V(1, { hangUpSms = 2 }), "N10", P .. "hangUpSms" },
    { "hangUpSms -1", V(1, { hangUpSms = -1 }), "N10", P .. "hangUpSms" },
    { 'hangUpSms "0"', V(1, { hangUpSms = "0" }), "N10", P .. "hangUpSms" },
    { "hangUpSms true", V(1, { hangUpSms = true }), "N10", P .. "hangUpSms" },
  })

  local function sms(name, s, ok)
    if ok then return { "smsContent " .. name, V(1, SMS, { smsContent = s }) } end
    return { "smsContent " .. name, V(1, SMS, { smsContent = s }), "N11", P .. "smsContent" }
  end
  local all10 = {}
  for i = 1, 10 do all10[i] = "${text" .. i .. "}" end
  run("N11 smsContent", {
    sms("with every placeholder", table.concat(all10, " "), true),
    sms("of 1000 ASCII characters", rep("a", 1000), true),
    sms("of 1000 euro signs (3000 bytes)", rep(EURO, 1000), true),
    sms("with $ and braces but no ${", "$5 off {text1} $ {x} $", true),
    sms('"$${text1}}"', "$${text1}}", true),
    { "smsContent given with hangUpSms 0", V(1, { smsContent = "plain" }) },
    { "hangUpSms 1 without smsContent", V(1, SMS, { smsContent = NONE }), "N11", P .. "smsContent" },
    sms("empty with hangUpSms 1", ""), sms("with ${name}", "Hi ${name}"),
    sms("with ${text11}", "${text11}"), sms("with ${text0}", "${text0}"),
    sms("with ${text01}", "${text01}"), sms("with ${TEXT1}", "${TEXT1}"),
    sms("with an unterminated ${text1", "code ${text1"), sms("with ${}", "${}"),
    sms("with ${ text1}", "${ text1}"), sms("of 1001 characters", rep("a", 1001)),
    sms("of 1001 euro signs", rep(EURO, 1001)), sms("42", 42),
    { "a bad placeholder with hangUpSms 0", V(1, { smsContent = "${name}" }),
      "N11", P .. "smsContent" },
  })

  run("N12 senderId", {
    { 'senderId "ITNIO"', V(1, { senderId = "ITNIO" }) },
    { "senderId of 32 characters", V(1, { senderId = rep("s", 32) }) },
    { "senderId of 32 Chinese characters", V(1, { senderId = rep(ZH, 32) }) },
    { "senderId of 33 characters", V(1, { senderId = rep("s", 33) }), "N12", P .. "senderId" },
    { "senderId of 33 Chinese characters", V(1, { senderId = rep(ZH, 33) }),
      "N12", P .. "senderId" },
    { "senderId 5", V(1, { senderId = 5 }), "N12", P .. "senderId" },
  })

  run("N13 push flags", {
    { "feedbackPush alone", V(1, HANG, { feedbackPush = 1, feedbackValue = "1" }) },
    { "successPush alone", V(1, HANG, { successPush = 1, successPushTime = 5 }) },
    { "failedPush alone", V(1, HANG, { failedPush = 1 }) },
    { "ringPush alone", V(1, HANG, { ringPush = 1 }) },
    { "all four flags", V(1, HANG, { feedbackPush = 1, feedbackValue = "9", successPush = 1,
      successPushTime = 1, failedPush = 1, ringPush = 1 }) },
    { "flags 0 without SMS", V(1, { feedbackPush = 0, successPush = 0, failedPush = 0,
      ringPush = 0 }) },
    { "hangUpSms 1 with no flag", V(1, HANG), "N13", "nodeList[1]" },
    { "hangUpSms 1 with every flag 0", V(1, HANG, { feedbackPush = 0, successPush = 0,
      failedPush = 0, ringPush = 0 }), "N13", "nodeList[1]" },
    { "feedbackPush 2", V(1, { feedbackPush = 2 }), "N13", P .. "feedbackPush" },
    { "successPush -1", V(1, { successPush = -1 }), "N13", P .. "successPush" },
    { 'failedPush "1"', V(1, { failedPush = "1" }), "N13", P .. "failedPush" },
    { "ringPush true", V(1, { ringPush = true }), "N13", P .. "ringPush" },
    { "ringPush 0.5", V(1, { ringPush = 0.5 }), "N13", P .. "ringPush" },
  })

  local function fb(name, s, ok)
    local t = V(1, { feedbackPush = 1, feedbackValue = s })
    if ok then return { "feedbackValue " .. name, t } end
    return { "feedbackValue " .. name, t, "N14", P .. "feedbackValue" }
  end
  run("N14 feedbackValue", {
    fb('"0"', "0", true), fb('"9"', "9", true),
    { "a feedbackValue given with feedbackPush 0", V(1, { feedbackPush = 0, feedbackValue = "5" }) },
    { "feedbackPush 1 without feedbackValue", V(1, { feedbackPush = 1 }),
      "N14", P .. "feedbackValue" },
    fb('"10"', "10"), fb('"a"', "a"), fb("empty", ""), fb("5 (a number)", 5),
    fb("an Arabic-Indic digit", "\217\163"), fb("a fullwidth digit", "\239\188\145"),
  })

  local function spt(x, ok)
    local t = V(1, { successPush = 1, successPushTime = x })
    if ok then return { "successPushTime " .. tostring(x), t } end
    return { "successPushTime " .. tostring(x), t, "N15", P .. "successPushTime" }
  end
  run("N15 successPushTime", {
    spt(1, true), spt(9999, true),
    { "a successPushTime given with successPush 0", V(1, { successPushTime = 60 }) },
    { "successPush 1 without successPushTime", V(1, { successPush = 1 }),
      "N15", P .. "successPushTime" },
    spt(0), spt(10000), spt("30"), spt(1.5),
  })

  run("N16 toSeat", {
    { "toSeat 0", V(1) }, { "toSeat 1", V(1, SEAT) },
    { "a missing toSeat", V(1, { toSeat = NONE }), "N16", P .. "toSeat" },
    { "toSeat 2", V(1, { toSeat = 2 }), "N16", P .. "toSeat" },
    { 'toSeat "0"', V(1, { toSeat = "0" }), "N16", P .. "toSeat" },
    { "toSeat true", V(1, { toSeat = true }), "N16", P .. "toSeat" },
  })

  -- The transfer group N17..N21: toSeat = 1 needs each; a value given is always checked.
  local function seat(rule, name, ov, ok)
    local field = name:match("^(%a+)")
    if ok then return { name, V(1, SEAT, ov) } end
    return { name, V(1, SEAT, ov), rule, P .. field }
  end
  run("N17 sipGroupId", {
    seat("N17", "sipGroupId 1", { sipGroupId = 1 }, true),
    { "a sipGroupId given with toSeat 0", V(1, { sipGroupId = 7 }) },
    seat("N17", "sipGroupId missing with toSeat 1", { sipGroupId = NONE }),
    seat("N17", "sipGroupId 0", { sipGroupId = 0 }),
    seat("N17", "sipGroupId -5", { sipGroupId = -5 }),
    seat("N17", 'sipGroupId "1000038"', { sipGroupId = "1000038" }),
    { "sipGroupId 0 with toSeat 0", V(1, { sipGroupId = 0 }), "N17", P .. "sipGroupId" },
  })
  run("N18 outboundControl", {
    seat("N18", "outboundControl 1", { outboundControl = 1 }, true),
    seat("N18", "outboundControl missing with toSeat 1", { outboundControl = NONE }),
    seat("N18", "outboundControl 0", { outboundControl = 0 }),
    seat("N18", "outboundControl 2", { outboundControl = 2 }),
    seat("N18", 'outboundControl "1"', { outboundControl = "1" }),
    { "outboundControl 2 with toSeat 0", V(1, { outboundControl = 2 }),
      "N18", P .. "outboundControl" },
  })
  run("N19 calloutRate", {
    seat("N19", "calloutRate 100", { calloutRate = 100 }, true),
    seat("N19", "calloutRate missing with toSeat 1", { calloutRate = NONE }),
    seat("N19", "calloutRate 0", { calloutRate = 0 }),
    seat("N19", "calloutRate 101", { calloutRate = 101 }),
    seat("N19", "calloutRate 2.5", { calloutRate = 2.5 }),
  })
  run("N20 toSeatType", {
    seat("N20", "toSeatType 2 with a key", { toSeatType = 2, toSeatKey = "1" }, true),
    seat("N20", "toSeatType missing with toSeat 1", { toSeatType = NONE }),
    seat("N20", "toSeatType 0", { toSeatType = 0 }),
    seat("N20", "toSeatType 3", { toSeatType = 3 }),
    seat("N20", 'toSeatType "1"', { toSeatType = "1" }),
  })
  local function key(s, ok)
    return seat("N21", "toSeatKey " .. (type(s) == "string" and ('"' .. s .. '"') or tostring(s)),
                { toSeatType = 2, toSeatKey = s }, ok)
  end
  run("N21 toSeatKey", {
    key("0", true), key("9", true), key("*", true), key("#", true),
    seat("N21", "toSeatKey given with toSeatType 1", { toSeatKey = "5" }, true),
    seat("N21", "toSeatKey missing with toSeatType 2", { toSeatType = 2 }),
    key("10"), key("a"), key(""), key("+"), key(1), key("\239\188\131"),
  })

  run("N22 delayTransfer", {
    { "delayTransfer 0", V(1, KEYED, { delayTransfer = 0 }) },
    { "delayTransfer 30", V(1, KEYED, { delayTransfer = 30 }) },
    { "delayTransfer 0 with toSeat 0", V(1, { delayTransfer = 0 }) },
    { "delayTransfer -1", V(1, KEYED, { delayTransfer = -1 }), "N22", P .. "delayTransfer" },
    { "delayTransfer 1.5", V(1, KEYED, { delayTransfer = 1.5 }), "N22", P .. "delayTransfer" },
    { 'delayTransfer "5"', V(1, KEYED, { delayTransfer = "5" }), "N22", P .. "delayTransfer" },
  })

  run("N23 voiceFileName and idxSmsAppId", {
    { "both as strings", V(1, { voiceFileName = "x.wav", idxSmsAppId = "app-1" }) },
    { "voiceFileName 5", V(1, { voiceFileName = 5 }), "N23", P .. "voiceFileName" },
    { "idxSmsAppId true", V(1, { idxSmsAppId = true }), "N23", P .. "idxSmsAppId" },
    { "an idxSmsAppId not UTF-8", V(1, { idxSmsAppId = "\255" }), "N23", P .. "idxSmsAppId" },
  })

  run("N24 unknown node keys", {
    { "an unknown node key", V(1, { bogus = 1 }), "N24", P .. "bogus" },
    { "a typo of source", V(1, { sourse = 1 }), "N24", P .. "sourse" },
    { "an unknown key in the third node", F.task_nodes(voice(1), voice(2), voice(3, { x = 1 })),
      "N24", P3 .. "x" },
    { "a passthrough table value", V(1, { bogus = {} }), "N24", P .. "bogus", opts = PASS },
    { "a passthrough number", V(1, { extra = 7 }), opts = PASS },
    { "a passthrough string and boolean", V(1, { extra = "x", flag = true }), opts = PASS },
  })

  run("A2 scriptId", {
    { "scriptId 123", A() }, { "scriptId 1", A{ scriptId = 1 } },
    { "scriptId 2^53-1", A{ scriptId = 2^53 - 1 } },
    { "scriptId 0", A{ scriptId = 0 }, "A2", P .. "scriptId" },
    { "scriptId -1", A{ scriptId = -1 }, "A2", P .. "scriptId" },
    { "scriptId 1.5", A{ scriptId = 1.5 }, "A2", P .. "scriptId" },
    { 'scriptId "123"', A{ scriptId = "123" }, "A2", P .. "scriptId" },
    { "scriptId true", A{ scriptId = true }, "A2", P .. "scriptId" },
  })

  run("A3 mixing scriptId with voice fields", {
    { "an agent node with an absent voice field", A{ source = cjson.null } },
    { "an agent node with source", A{ source = 1 }, "A3", P .. "source" },
    { "an agent node with voiceFileName", A{ voiceFileName = "x" }, "A3", P .. "voiceFileName" },
    { "an agent node with feedbackPush 0", A{ feedbackPush = 0 }, "A3", P .. "feedbackPush" },
    { "an agent node with delayTransfer", A{ delayTransfer = 0 }, "A3", P .. "delayTransfer" },
    { "an agent node with text and toSeat", A{ text = "x", toSeat = 0 }, "A3", P .. "text",
      also = { { "A3", P .. "toSeat" } } },
    { "an agent node in second place with lan", F.task_nodes(voice(1), agent{ lan = "en" }),
      "A3", P2 .. "lan" },
    { "an agent node with an unknown key", A{ bogus = 1 }, "N24", P .. "bogus" },
  })

  describe("several broken rules", function()
    it("reports every broken rule of one task in one call", function()
      local task = F.task({ keyId = NONE, recallNum = 11, bogus = "x", nodeList = {
        voice(1, SMS, { smsContent = "Hi ${name}" }), voice(2),
        voice(3, SEAT, { calloutRate = 101 }) } })
      local body, errs = F.encode(core, task)
      assert.is_nil(body)
      local ok, msg = F.same_errors(errs, { { "T1", "keyId" }, { "T3", "recallNum" },
        { "T6", "bogus" }, { "N11", "nodeList[1].smsContent" },
        { "N19", "nodeList[3].calloutRate" } })
      assert(ok, msg)
      assert.is_nil(errs.truncated)
    end)

    it("reports T1..T4 as required for an empty task", function()
      local body, errs = F.encode(core, {})
      assert.is_nil(body)
      local ok, msg = F.same_errors(errs, { { "T1", "keyId" }, { "T2", "recallInterval" },
        { "T3", "recallNum" }, { "T4", "recallType" } })
      assert(ok, msg)
    end)

    it("reports N1, N10 and N16 as required for an empty node", function()
      local body, errs = F.encode(core, F.task_nodes(voice(1), {}))
      assert.is_nil(body)
      local ok, msg = F.same_errors(errs, { { "N1", P2 .. "source" },
        { "N10", P2 .. "hangUpSms" }, { "N16", P2 .. "toSeat" } })
      assert(ok, msg)
    end)
  end)
end)
