--- Builders for auto-recall tasks: readable names for the vendor's fields, defaults for the
-- required switches, and the flags that go together set together. They only build plain
-- tables; the core still checks every rule when the task is sent.
--
--     local recall = require "itnio.recall"
--     local opts = { interval = 30, attempts = 2, only_failed = true }
--     local task = recall.task(299, opts, {
--       recall.tts("Your parcel is here", "en-US", { rate = 1.25 })
--         :sms("Hi ${text1}", { on = { "success" }, after = 10 })
--         :transfer{ group = 1000038, rate = 1, key = "#" },
--       recall.voice_file("greeting.wav"),
--     })
--     client:recall_update(task)
--
-- A wrong option name or type is a programming error and raises ("bad argument", with the
-- nearest option's name for a typo). The builders work without the C core (it loads for
-- Base64 only).
-- @module itnio.recall
local options = require "itnio.internal.options"

local type, pairs, ipairs, setmetatable, tostring = type, pairs, ipairs, setmetatable, tostring

options.mine()

local _M = {}

local Node = {}
Node.__index = Node

local bad, check_opts = options.bad, options.check

local function voice_node(fields)
  fields.hangUpSms = 0
  fields.toSeat = 0
  return setmetatable(fields, Node)
end

local GENDER = { male = 1, female = 2 }
local TTS_OPTS = options.set{ "rate", "gender", "accent" }

--- A text-to-speech node (source 3).
-- @tparam string text what the node says, at most 1000 characters
-- @tparam string lan the language code (`"en-US"`)
-- @tparam[opt] table opts `rate`: the speaking rate, 0.25 to 4; `gender`: `"male"` or
-- `"female"`; `accent`: an accent code, a whole number from 0
-- @treturn Node the node
-- @raise on an unknown option, or a gender other than those two
function _M.tts(text, lan, opts)
  opts = check_opts(opts, TTS_OPTS, "recall.tts", 3)
  local gender = opts.gender
  if gender ~= nil and not GENDER[gender] then bad("recall.tts", 3, "gender must be 'male' or 'female'") end
  return voice_node{ source = 3, text = text, lan = lan, speakingRate = opts.rate,
                     ssmlGender = gender and GENDER[gender], accent = opts.accent }
end

--- A node that plays a voice file already uploaded (source 1).
-- @tparam string voice_file_id the voice file's id on the vendor's side
-- @treturn Node the node
function _M.voice_file(voice_file_id)
  return voice_node{ source = 1, voiceFileId = voice_file_id }
end

--- A node that uploads a voice file again (source 2), already in Base64.
-- @tparam string name the file's name, 5 to 32 characters
-- @tparam string base64 the file in standard padded Base64 (RFC 4648, one line)
-- @treturn Node the node
function _M.upload(name, base64)
  return voice_node{ source = 2, uploadName = name, baseFile = base64 }
end

-- The largest file the upload builders encode. The vendor states no limit for baseFile
-- (csrc/schema.c, N4), so this is ours: 64 MiB of audio, about 85 MiB of Base64 in the body.
_M.MAX_UPLOAD = 64 * 1024 * 1024

local UPLOAD_OPTS = options.set{ "max_bytes" }

local function upload_max(fn, opts)
  opts = check_opts(opts, UPLOAD_OPTS, fn, 3)
  local max = opts.max_bytes
  if max == nil then return _M.MAX_UPLOAD end
  if not options.is_number(max, 0, math.huge, true) then
    bad(fn, 3, "max_bytes must be a whole number of bytes")
  end
  return max
end

-- Base64 in C; the core loads on first use, so the other builders stay pure Lua.
local function base64(bytes)
  return require("itnio.core").base64(bytes)
end

local function too_large(what, size, max)
  return what .. ": too large to upload (" .. tostring(size) .. " bytes; the limit is "
    .. tostring(max) .. ")"
end

--- An upload node (source 2) from the audio itself, Base64-encoded in C.
-- @tparam string name the file's name, 5 to 32 characters
-- @tparam string bytes the audio file's bytes
-- @tparam[opt] table opts `max_bytes`: the size limit in bytes (else `MAX_UPLOAD`, 64 MiB)
-- @treturn Node the node
-- @return[2] nil
-- @treturn[2] string why: bytes pass the size limit
-- @raise when name or bytes is not a string, or on a bad option
function _M.upload_bytes(name, bytes, opts)
  if type(name) ~= "string" then
    bad("recall.upload_bytes", 1, "name must be a string, got " .. type(name))
  end
  if type(bytes) ~= "string" then
    bad("recall.upload_bytes", 2, "bytes must be a string, got " .. type(bytes))
  end
  local max = upload_max("recall.upload_bytes", opts)
  if #bytes > max then return nil, too_large(name, #bytes, max) end
  return _M.upload(name, base64(bytes))
end

--- An upload node (source 2) from a file, Base64-encoded in C. A file larger than the limit
-- is refused before it is read.
-- @tparam string path the file to read
-- @tparam[opt] string name the file's name, 5 to 32 characters (else the path's base name)
-- @tparam[opt] table opts `max_bytes`: the size limit in bytes (else `MAX_UPLOAD`, 64 MiB)
-- @treturn Node the node
-- @return[2] nil
-- @treturn[2] string why, naming the path: the file cannot be read, or passes the size limit
-- @raise when path or name is not a string, or on a bad option
function _M.upload_file(path, name, opts)
  if type(path) ~= "string" then bad("recall.upload_file", 1, "path must be a string, got " .. type(path)) end
  if name ~= nil and type(name) ~= "string" then
    bad("recall.upload_file", 2, "name must be a string, got " .. type(name))
  end
  local max = upload_max("recall.upload_file", opts)
  local f, err = io.open(path, "rb")
  if not f then return nil, tostring(err) end
  -- A directory opens but cannot be read, and its seek("end") says anything: probe first.
  local probe, perr = f:read(0)
  if probe == nil and perr then
    f:close()
    return nil, path .. ": " .. tostring(perr)
  end
  -- Then the size, so a huge file is refused before it is read. A pipe has none, and
  -- /dev/zero claims 0: whatever it says, reading stops one byte past the limit.
  local size = f:seek("end")
  if size then
    if size > max then
      f:close()
      return nil, too_large(path, size, max)
    end
    f:seek("set")
  end
  -- The core reads and encodes it a chunk at a time: only the text is ever held whole. (The
  -- handle, not the path: a FIFO opened again would wait for a writer of its own.)
  local text, why = require("itnio.core").base64_file(f, max)
  f:close()
  if not text then
    if why == "too large" then return nil, too_large(path, "more than " .. max, max) end
    return nil, path .. ": " .. tostring(why)
  end
  return _M.upload(name or path:match("([^/]*)/*$"), text)
end

--- An AI-agent node (A2): only the agent template id.
-- @tparam int script_id the agent template's id, from 1
-- @treturn Node the node
function _M.agent(script_id)
  return setmetatable({ scriptId = script_id }, Node)
end

local PUSH = { feedback = "feedbackPush", success = "successPush", failed = "failedPush", ring = "ringPush" }
local SMS_OPTS = options.set{ "on", "after", "key", "sender" }

--- Sends an SMS when the call hangs up.
-- @tparam string content the SMS text, at most 1000 characters; its placeholders are
-- `${text1}` to `${text10}`
-- @tparam table opts `on`: the events that send it, a list of `"feedback"`, `"success"`,
-- `"failed"`, `"ring"` (at least one); `after`: seconds after a successful call (with
-- `"success"`); `key`: the feedback digit, `"0"` to `"9"` (with `"feedback"`); `sender`: the
-- sender id
-- @treturn Node the node itself, for chaining
-- @raise on an unknown option or event
function Node:sms(content, opts)
  opts = check_opts(opts, SMS_OPTS, "node:sms", 2)
  self.hangUpSms, self.smsContent, self.senderId = 1, content, opts.sender
  for _, field in pairs(PUSH) do self[field] = 0 end
  for _, event in ipairs(opts.on or {}) do
    local field = PUSH[event]
    if not field then bad("node:sms", 2, "unknown event '" .. tostring(event) .. "' in opts.on") end
    self[field] = 1
  end
  if opts.after ~= nil then self.successPushTime = opts.after end
  if opts.key ~= nil then self.feedbackValue = opts.key end
  return self
end

local TRANSFER_OPTS = options.set{ "group", "rate", "key", "delay" }

--- Transfers the call to an agent group: after the group call ends, or on a keypress when
-- `key` is given.
-- @tparam table opts `group`: the agent group's id; `rate`: the outbound multiplier, 1 to
-- 100; `key`: the transfer key, `"0"` to `"9"`, `"*"` or `"#"`; `delay`: seconds before a
-- keypress transfer
-- @treturn Node the node itself, for chaining
-- @raise on an unknown option
function Node:transfer(opts)
  opts = check_opts(opts, TRANSFER_OPTS, "node:transfer", 1)
  self.toSeat, self.sipGroupId, self.outboundControl, self.calloutRate = 1, opts.group, 1, opts.rate
  self.toSeatType = opts.key ~= nil and 2 or 1
  self.toSeatKey, self.delayTransfer = opts.key, opts.delay
  return self
end

local TASK_OPTS = options.set{ "interval", "attempts", "only_failed", "intents" }

--- A task, for `client:recall_update`. The nodes are copied, so one node can serve
-- several tasks.
-- @tparam int key_id the task to edit, from 1
-- @tparam table opts `interval`: minutes between recalls, 1 to 1440; `attempts`: recall
-- attempts, 1 to 10; `only_failed`: `true` recalls only the failed calls; `intents`: a list
-- of intent labels (strings)
-- @tparam[opt] {Node,...} nodes the nodes, in order
-- @treturn table the task
-- @raise on an unknown option, or nodes that is not a table
function _M.task(key_id, opts, nodes)
  opts = check_opts(opts, TASK_OPTS, "recall.task", 2)
  local t = { keyId = key_id, recallInterval = opts.interval, recallNum = opts.attempts,
              recallType = opts.only_failed and 1 or 0, recallIntent = opts.intents }
  if nodes ~= nil then
    if type(nodes) ~= "table" then bad("recall.task", 3, "nodes must be an array") end
    local list = {}
    for i, node in ipairs(nodes) do
      local copy = {}
      for k, v in pairs(node) do copy[k] = v end
      list[i] = copy
    end
    t.nodeList = list
  end
  return t
end

return _M
