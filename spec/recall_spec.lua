-- itnio.recall: the builders make tasks the core accepts, with the fields the vendor names.
local recall = require "itnio.recall"
local core   = require "itnio.core"
local cjson  = require "cjson"

local function encode(task)
  local body, errs = core.encode_recall_update(task)
  if not body then
    local lines = {}
    for _, e in ipairs(errs) do lines[#lines + 1] = e.rule .. " " .. e.message end
    error(table.concat(lines, "; "), 2)
  end
  return cjson.decode(body)
end

describe("itnio.recall", function()
  it("builds the task of the module's header comment", function()
    local t = encode(recall.task(299, { interval = 30, attempts = 2, only_failed = true }, {
      recall.tts("Your parcel is here", "en-US", { rate = 1.25 })
        :sms("Hi ${text1}", { on = { "success" }, after = 10 })
        :transfer{ group = 1000038, rate = 1, key = "#" },
      recall.voice_file("greeting.wav"),
    }))
    assert.same({ keyId = 299, recallInterval = 30, recallNum = 2, recallType = 1, nodeList = {
      { source = 3, text = "Your parcel is here", lan = "en-US", speakingRate = 1.25, hangUpSms = 1,
        smsContent = "Hi ${text1}", feedbackPush = 0, successPush = 1, successPushTime = 10,
        failedPush = 0, ringPush = 0, toSeat = 1, sipGroupId = 1000038, outboundControl = 1,
        calloutRate = 1, toSeatType = 2, toSeatKey = "#" },
      { source = 1, voiceFileId = "greeting.wav", hangUpSms = 0, toSeat = 0 },
    } }, t)
  end)

  it("builds every node kind the API knows", function()
    local t = encode(recall.task(7, { interval = 1, attempts = 1, intents = { "101" } }, {
      recall.upload("hello.wav", "QUJD"),
      recall.tts("Bonjour", "fr-FR", { gender = "male", accent = 2 }),
      recall.voice_file("v.wav"):sms("Bye", { on = { "feedback", "ring" }, key = "5", sender = "ACME" }),
      recall.voice_file("w.wav"):transfer{ group = 5, rate = 10, delay = 0 },
      recall.agent(123),
    }))
    assert.equal(0, t.recallType)
    assert.same({ "101" }, t.recallIntent)
    local n = t.nodeList
    assert.same({ source = 2, uploadName = "hello.wav", baseFile = "QUJD", hangUpSms = 0, toSeat = 0 }, n[1])
    assert.equal(1, n[2].ssmlGender)
    assert.equal(2, n[2].accent)
    assert.equal(1, n[3].feedbackPush)
    assert.equal(1, n[3].ringPush)
    assert.equal("5", n[3].feedbackValue)
    assert.equal("ACME", n[3].senderId)
    assert.equal(1, n[4].toSeatType)
    assert.is_nil(n[4].toSeatKey)
    assert.same({ scriptId = 123 }, n[5])
  end)

  it("copies nodes, so one node serves several tasks and later changes do not leak", function()
    local node = recall.voice_file("a.wav")
    local t1 = recall.task(1, { interval = 1, attempts = 1 }, { node })
    node.voiceFileId = "b.wav"
    local t2 = recall.task(2, { interval = 1, attempts = 1 }, { node })
    assert.equal("a.wav", t1.nodeList[1].voiceFileId)
    assert.equal("b.wav", t2.nodeList[1].voiceFileId)
  end)

  it("leaves the rules to the core: a bad value built is a bad value refused", function()
    local _, errs = core.encode_recall_update(recall.task(299, { interval = 30, attempts = 2 },
      { recall.tts("x", "en-US"):sms("Hi", { on = {} }) }))
    assert.equal("N13", errs[1].rule)
  end)

  local raising = {
    { "an unknown task option",  function() recall.task(1, { intervall = 3 }) end, "intervall" },
    { "options that are not a table", function() recall.tts("x", "en", "fast") end, "must be a table" },
    { "an unknown gender",       function() recall.tts("x", "en", { gender = "robot" }) end, "gender" },
    { "an unknown SMS event",    function() recall.voice_file("a"):sms("x", { on = { "answer" } }) end, "answer" },
    { "an unknown transfer option", function() recall.voice_file("a"):transfer{ groupId = 1 } end, "groupId" },
    { "nodes that are not a list", function() recall.task(1, {}, "nodes") end, "array" },
  }
  for _, row in ipairs(raising) do
    it("raises on " .. row[1], function()
      local ok, err = pcall(row[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(row[3], 1, true), tostring(err))
    end)
  end
end)
