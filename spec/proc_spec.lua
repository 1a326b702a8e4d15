-- The core's process functions for a command line (csrc/proc.c): catch_signals, caught,
-- isatty. Each signal case runs in a Lua of its own, which signals itself.
local shell = require "support.shell"

-- Runs a Lua chunk in a child Lua (the runner's own, with the same paths): output, exit status.
local function child(chunk)
  local i = -1
  while arg[i - 1] do i = i - 1 end
  local lua = arg[i]   -- the interpreter that runs the specs
  local prelude = ("package.path = %q; package.cpath = %q; local core = require 'itnio.core';"
    .. " local pid = io.open('/proc/self/stat'):read('*l'):match('^(%%d+)');"
    -- (os.execute's system() ignores SIGINT while it waits: the signal comes after, from a
    -- background shell, while the Lua sleeps)
    .. " local function kill(sig) os.execute('(sleep 0.05; kill -' .. sig .. ' ' .. pid .. ') &'); core.sleep(0.3) end;")
    :format(package.path, package.cpath)
  local out = shell.run(shell.quote(lua) .. " -e " .. shell.quote(prelude .. chunk) .. "; echo \"exit=$?\"")
  return out, tonumber(out:match("exit=(%d+)"))
end

describe("core: signals and terminals for a command line", function()
  it("notes the first SIGINT or SIGTERM and goes on", function()
    local out, status = child("assert(core.caught() == nil); assert(core.catch_signals());"
      .. " kill('INT'); io.write(tostring(core.caught()), ' ')")
    assert.truthy(out:find("^INT "), out)
    assert.equal(0, status)
    out = child("core.catch_signals(); kill('TERM'); io.write(tostring(core.caught()))")
    assert.truthy(out:find("^TERM"), out)
  end)

  it("takes a second signal's own way out at once, as the shell sees it", function()
    local out, status = child("core.catch_signals(); kill('INT'); kill('INT'); io.write('still here')")
    assert.is_nil(out:find("still here"), out)
    assert.equal(130, status)
    status = select(2, child("core.catch_signals(); kill('TERM'); kill('INT'); io.write('still here')"))
    assert.equal(130, status)
  end)

  it("says whether a descriptor is a terminal, and refuses what is none", function()
    local core = require "itnio.core"
    local out = child("io.write(tostring(core.isatty(0)), tostring(core.isatty(1)))")
    assert.truthy(out:find("^falsefalse"), out)   -- a pipe and /dev/null are no terminals
    assert.has_error(function() core.isatty(-1) end)
    assert.has_error(function() core.isatty("x") end)
  end)
end)
