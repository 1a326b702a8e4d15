-- itnio.recall: the builders make tasks the core accepts, with the fields the vendor names.
local recall = require "itnio.recall"
local core   = require "itnio.core"
local cjson  = require "cjson"

local function encode(task)
  local body, errs = core.encode("recall_update", task)
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
    local _, errs = core.encode("recall_update", recall.task(299, { interval = 30, attempts = 2 },
      { recall.tts("x", "en-US"):sms("Hi", { on = {} }) }))
    assert.equal("N13", errs[1].rule)
  end)

  describe("uploads", function()
    -- A reference encoder in plain arithmetic (Lua 5.1 has no bit operators).
    local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    local function ref_base64(s)
      local out = {}
      for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local d1, d2 = math.floor(n / 262144), math.floor(n / 4096) % 64
        local d3, d4 = math.floor(n / 64) % 64, n % 64
        out[#out + 1] = ALPHA:sub(d1 + 1, d1 + 1) .. ALPHA:sub(d2 + 1, d2 + 1)
          .. (b and ALPHA:sub(d3 + 1, d3 + 1) or "=") .. (c and ALPHA:sub(d4 + 1, d4 + 1) or "=")
      end
      return table.concat(out)
    end

    local tmp = {}
    local function write_tmp(bytes)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(bytes)
      f:close()
      tmp[#tmp + 1] = path
      return path
    end
    after_each(function()
      for _, path in ipairs(tmp) do os.remove(path) end
      tmp = {}
    end)

    it("core.base64 gives the test vectors of RFC 4648, section 10", function()
      local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                        fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
      for bytes, text in pairs(vectors) do
        assert.equal(text, core.base64(bytes))
        assert.equal(text, ref_base64(bytes))
        assert.equal(text, recall.upload_bytes("hello.wav", bytes).baseFile)
      end
    end)

    it("core.base64 raises on anything but a string", function()
      for _, bad in ipairs({ 12, true, {} }) do
        assert.has_error(function() core.base64(bad) end)
      end
    end)

    it("encodes a file with every byte value, across a chunk boundary", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local all = table.concat(bytes)
      for _, content in ipairs({ all, all:rep(193) .. "xy" }) do   -- 49410 bytes: past 48 KiB
        local path = write_tmp(content)
        local node = assert(recall.upload_file(path, "bytes.wav"))
        assert.equal(ref_base64(content), node.baseFile)
      end
    end)

    it("encodes a 1 MB file as the reference encoder does, named by its base name", function()
      local parts, x = {}, 12345
      for i = 1, 1000000 do
        x = (x * 1103515245 + 12345) % 2147483648
        parts[i] = string.char(math.floor(x / 65536) % 256)
      end
      local content = table.concat(parts)
      local path = write_tmp(content)
      local node = assert(recall.upload_file(path))
      assert.equal(path:match("[^/]+$"), node.uploadName)
      assert.equal(2, node.source)
      assert.equal(1333336, #node.baseFile)
      assert.equal(ref_base64(content), node.baseFile)
    end)

    it("builds tasks the core accepts", function()
      local path = write_tmp("RIFF....WAVEfmt ")
      local t = encode(recall.task(299, { interval = 30, attempts = 1 }, {
        assert(recall.upload_file(path, "greeting.wav")),
        assert(recall.upload_bytes("hello.wav", "\0\1\2\255")),
      }))
      assert.same({ source = 2, uploadName = "greeting.wav", baseFile = "UklGRi4uLi5XQVZFZm10IA==",
                    hangUpSms = 0, toSeat = 0 }, t.nodeList[1])
      assert.equal("AAEC/w==", t.nodeList[2].baseFile)
    end)

    it("returns nil and a message naming the path for a missing file or a directory", function()
      local node, err = recall.upload_file("/nonexistent/dir/voice.wav")
      assert.is_nil(node)
      assert.equal("string", type(err))
      assert.truthy(err:find("/nonexistent/dir/voice.wav", 1, true), err)
      node, err = recall.upload_file("/tmp", "directory.wav")
      assert.is_nil(node)
      assert.truthy(err:find("^/tmp: "), err)
    end)

    it("returns nil and a message for a file over the limit, before reading it", function()
      assert.equal(64 * 1024 * 1024, recall.MAX_UPLOAD)
      local path = write_tmp("")
      assert(os.execute("truncate -s 65M " .. path))   -- sparse: no 65 MB written
      local node, err = recall.upload_file(path)
      assert.is_nil(node)
      assert.truthy(err:find(path .. ": too large", 1, true), err)
      assert.truthy(err:find("68157440 bytes; the limit is 67108864", 1, true), err)
      -- a lower limit, on both builders; the limit itself still passes
      path = write_tmp("12345")
      assert.truthy(recall.upload_file(path, "small.wav", { max_bytes = 5 }))
      node, err = recall.upload_file(path, "small.wav", { max_bytes = 4 })
      assert.is_nil(node)
      assert.truthy(err:find("5 bytes; the limit is 4", 1, true), err)
      assert.truthy(recall.upload_bytes("small.wav", "12345", { max_bytes = 5 }))
      node, err = recall.upload_bytes("small.wav", "12345", { max_bytes = 4 })
      assert.is_nil(node)
      assert.truthy(err:find("^small.wav: too large"), err)
    end)
  end)

  local raising = {
    { "an unknown task option",  function() recall.task(1, { intervall = 3 }) end, "intervall" },
    { "options that are not a table", function() recall.tts("x", "en", "fast") end, "table expected" },
    { "a misspelled option, with the nearest", function() recall.task(1, { intervall = 3 }) end,
      "bad argument #2 to 'recall.task' (unknown option 'intervall' (did you mean 'interval'?))" },
    { "an unknown gender",       function() recall.tts("x", "en", { gender = "robot" }) end, "gender" },
    { "an unknown SMS event",    function() recall.voice_file("a"):sms("x", { on = { "answer" } }) end,
      "answer" },
    { "an unknown transfer option", function() recall.voice_file("a"):transfer{ groupId = 1 } end,
      "groupId" },
    { "nodes that are not a list", function() recall.task(1, {}, "nodes") end, "array" },
    { "a path that is not a string", function() recall.upload_file(42) end, "path must be a string" },
    { "an upload name that is not a string", function() recall.upload_file("a.wav", 5) end, "name must be" },
    { "bytes that are not a string", function() recall.upload_bytes("hello.wav", 42) end, "bytes must be" },
    { "a name for bytes that is not a string", function() recall.upload_bytes(nil, "x") end, "name must be" },
    { "an unknown upload option", function() recall.upload_bytes("hello.wav", "x", { max = 1 }) end,
      "'max'" },
    { "a bad max_bytes", function() recall.upload_file("a.wav", nil, { max_bytes = -1 }) end, "max_bytes" },
  }
  for _, row in ipairs(raising) do
    it("raises on " .. row[1], function()
      local ok, err = pcall(row[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(row[3], 1, true), tostring(err))
    end)
  end
end)
