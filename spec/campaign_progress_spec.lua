-- The campaign's progress line (itnio.cli.campaign, as bin/itnio draws it): for a file, the
-- lines to do and the share done from the first frame; the time left from the lines this run
-- ended itself, those its journal tells again apart. (Regressions: a file showed "523/?"
-- until the end; the time left came from bytes read in 64 KiB chunks and jumped, and said
-- 0-1 s through a whole resumed run.) Tests tagged #timing assert generous bounds.
local campaign = require "itnio.cli.campaign"
local sandbox  = require "support.sandbox"
local shell    = require "support.shell"

local function line(id)
  return ('{"keyId":%d,"recallType":0,"recallInterval":30,"recallNum":1,"nodeList":[{"source":3,'
    .. '"text":"Progress","lan":"en-US","hangUpSms":0,"toSeat":0}]}'):format(id)
end

describe("a campaign's progress line", function()
  local sb, dir
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function()
    sb:reset()
    dir = shell.tmpdir()
  end)
  after_each(function() shell.run("rm -rf " .. shell.quote(dir)) end)

  -- A file of n task lines (keyIds from from), with blank lines between some.
  local function file(n, from)
    sb:seed(from, from + n - 1)
    local t = {}
    for i = 1, n do
      t[#t + 1] = line(from + i - 1)
      if i % 7 == 0 then t[#t + 1] = "  " end
    end
    local path = dir .. "/tasks.jsonl"
    shell.write(path, table.concat(t, "\n") .. "\n")
    return path
  end

  -- Runs the campaign of path at rate (with journal), keeping every frame it draws: the
  -- frames, each { t = seconds since the start, text }.
  local function run(path, rate, journal)
    local frames, t0 = {}, require("itnio.core").now()
    local progress = { write = function(self, ...)
      local text = table.concat({ ... })
      if text:find("itnio: ", 1, true) then
        frames[#frames + 1] = { t = require("itnio.core").now() - t0, text = text }
      end
      return self
    end, flush = function(self) return self end }
    local input = assert(io.open(path, "rb"))
    local size = input:seek("end")
    input:seek("set")
    local out = assert(io.open(dir .. "/results.jsonl", "wb"))
    local client = sb:client{ rate = rate }
    local status = campaign.run{ client = client, endpoint = "recall_update", input = input, size = size,
                                 journal = journal, out = out, concurrency = 4, progress = progress }
    input:close()
    out:close()
    client:close()
    assert.equal(0, status)
    return frames
  end
  local function left_of(text)
    local m, s = text:match("(%d+)m(%d+)s left")
    if m then return tonumber(m) * 60 + tonumber(s) end
    local n = text:match("(%d+)s left")
    return n and tonumber(n)
  end

  it("counts a file's lines before the first frame, and shows the share done", function()
    local path = file(30, 8000)
    assert.equal(30, campaign.count_lines(assert(io.open(path, "rb"))))
    local frames = run(path, 40)
    assert.is_true(#frames >= 3, #frames)
    for _, f in ipairs(frames) do
      assert.truthy(f.text:find("/30 lines (", 1, true), f.text)
    end
    assert.truthy(frames[#frames].text:find("%d+/30 lines %(%d+%%%)"), frames[#frames].text)
  end)

  it("tells the time left from the lines ended, steady, not from bytes read #timing", function()
    local path = file(30, 8100)
    local frames = run(path, 10)   -- 3 s at 10 a second
    local checked = 0
    for _, f in ipairs(frames) do
      local left = left_of(f.text)
      if left and f.t >= 0.5 and f.t <= 2.5 then
        checked = checked + 1
        local truth = 3 - f.t
        assert.is_true(math.abs(left - truth) <= 1.1,
                       ("at %.1f s: %s (truly %.1f s)"):format(f.t, f.text, truth))
      end
    end
    assert.is_true(checked >= 10, checked .. " frames checked")
  end)

  it("leaves the lines its journal tells again out of the time left of a resumed run #timing", function()
    local path = file(30, 8200)
    local journal = dir .. "/tasks.jsonl.journal"
    -- a first run that ends the first 10 lines: a journal of them, as an interrupted run leaves
    local first = dir .. "/first.jsonl"
    local lines = {}
    for l in assert(shell.read(path)):gmatch("[^\n]*\n") do lines[#lines + 1] = l end
    shell.write(first, table.concat(lines, "", 1, 11))   -- (10 tasks and a blank line)
    run(first, 100, dir .. "/first.journal")
    local rec = assert(shell.read(dir .. "/first.journal"))
    -- the journal names its input by size and a hash of its head: made again for the whole file
    local f = assert(io.open(path, "rb"))
    local head = f:read(64 * 1024)
    f:close()
    local j = assert(campaign.journal(journal, #assert(shell.read(path)), head))
    for l in rec:gmatch("[^\n]+") do
      if not l:find('"itnio_journal"', 1, true) then j.file:write(l, "\n") end
    end
    j.file:close()
    local frames = run(path, 10, journal)   -- 20 lines left: 2 s at 10 a second
    local checked = 0
    for _, fr in ipairs(frames) do
      local left = left_of(fr.text)
      if left and fr.t >= 0.3 and fr.t <= 1.2 then
        checked = checked + 1
        local truth = 2 - fr.t
        assert.is_true(math.abs(left - truth) <= 1.1,
                       ("at %.1f s of a resumed run of 2 s: %s"):format(fr.t, fr.text))
      end
    end
    assert.is_true(checked >= 5, checked .. " frames checked")
    assert.equal(10 + 20, sb:stats().accepted)
  end)
end)
