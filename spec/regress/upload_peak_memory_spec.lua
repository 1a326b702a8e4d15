-- A regression: recall.upload_file read the whole file into chunks, joined them, and encoded
-- the join: a 60 MB file peaked at 5.4 times its size under LuaJIT (+324 MB), 4.9 times
-- under Lua 5.4. The core now reads and encodes it a chunk at a time (core.base64_file):
-- the Base64 text (4/3 of the file) and the one copy Lua makes of it, 2.7 times. Measured in
-- a process of its own (VmHWM), under the runner's Lua. Tagged #big (valgrind leaves it out) and
-- #rss: under ASan the peak is its shadow memory and quarantine, not ours, so make asan leaves
-- it out; the plain suites on every runtime run it.
local shell = require "support.shell"

describe("recall.upload_file's memory", function()
  it("peaks under 3 times the file (the text and Lua's one copy of it) #big #rss", function()
    local mb = 20
    local path = os.tmpname()
    assert(select(2, shell.run("head -c " .. mb * 1048576 .. " /dev/urandom > " .. shell.quote(path))))
    local script = table.concat({
      "package.path = " .. ("%q"):format(package.path),
      "package.cpath = " .. ("%q"):format(package.cpath),
      "local function hwm() local f = io.open('/proc/self/status') local v = f:read('*a')"
        .. ":match('VmHWM:%s*(%d+) kB') f:close() return tonumber(v) end",
      "local recall = require 'itnio.recall'; require 'itnio.core'",
      "collectgarbage('collect'); local before = hwm()",
      "local node = assert(recall.upload_file(" .. ("%q"):format(path) .. ", 'big-greeting.wav'))",
      "print(#node.baseFile, hwm() - before)",
    }, "\n")
    local out, ok = shell.run(shell.quote(shell.lua) .. " -e " .. shell.quote(script))
    os.remove(path)
    assert(ok, out)
    local text, kb = out:match("(%d+)%s+(%d+)")
    assert.equal(math.ceil(mb * 1048576 / 3) * 4, tonumber(text))
    local times = tonumber(kb) * 1024 / (mb * 1048576)
    assert.is_true(times < 3, ("upload_file took %.2f times the file"):format(times))
  end)
end)
