-- The command line's signals (itnio.cli.signals, csrc/cli/signals.c): the first SIGINT or
-- SIGTERM asks to stop, a second one ends the process by its signal, and a SIGTERM ignored on
-- entry stays ignored. (An ignored SIGINT cannot be seen: the Lua interpreter, lua.c and
-- luajit.c alike, puts its own handler there before a script's first line runs;
-- doc/command-line.md says so.) Each case runs in a Lua of its own, which signals itself.
local shell = require "support.shell"

-- Runs a Lua chunk in a child Lua (the runner's own, with the same paths), under a shell
-- that first runs `pre` (a trap, say): output, exit status.
local function child(chunk, pre)
  local i = -1
  while arg[i - 1] do i = i - 1 end
  local lua = arg[i]   -- the interpreter that runs the specs
  local prelude = ("package.path = %q; package.cpath = %q; local signals = require 'itnio.cli.signals';"
    .. " local core = require 'itnio.core';"
    .. " local pid = io.open('/proc/self/stat'):read('*l'):match('^(%%d+)');"
    -- (os.execute's system() ignores SIGINT while it waits: the signal comes after, from a
    -- background shell, while the Lua sleeps)
    .. " local function kill(sig) os.execute('(sleep 0.05; kill -' .. sig .. ' ' .. pid .. ') &');"
    .. " core.sleep(0.3) end;")
    :format(package.path, package.cpath)
  local out = shell.run((pre or "") .. shell.quote(lua) .. " -e " .. shell.quote(prelude .. chunk)
    .. "; echo \"exit=$?\"")
  return out, tonumber(out:match("exit=(%d+)"))
end

describe("itnio.cli.signals", function()
  it("notes the first SIGINT or SIGTERM and goes on", function()
    local out, status = child("assert(signals.caught() == nil);"
      .. " io.write(table.concat({ signals.catch() }, ','), ' ');"
      .. " kill('INT'); io.write(tostring(signals.caught()), ' ')")
    assert.truthy(out:find("^INT,TERM INT "), out)
    assert.equal(0, status)
    out = child("signals.catch(); kill('TERM'); io.write(tostring(signals.caught()))")
    assert.truthy(out:find("^TERM"), out)
  end)

  it("takes a second signal's own way out at once, as the shell sees it", function()
    local out, status = child("signals.catch(); kill('INT'); kill('INT'); io.write('still here')")
    assert.is_nil(out:find("still here"), out)
    assert.equal(130, status)
    status = select(2, child("signals.catch(); kill('TERM'); kill('INT'); io.write('still here')"))
    assert.equal(130, status)
  end)

  it("leaves a SIGTERM ignored on entry ignored, as the shells and GNU tools do", function()
    local out, status = child("io.write(table.concat({ signals.catch() }, ','), ' '); kill('TERM');"
      .. " io.write(tostring(signals.caught()), ' still here')", "trap '' TERM; ")
    assert.truthy(out:find("^INT nil still here"), out)
    assert.equal(0, status)
  end)

  it("cannot see a SIGINT ignored on entry: the interpreter has taken it before the script runs", function()
    -- (the reason doc/command-line.md gives; if an interpreter ever leaves it be, this fails,
    -- and the command line then respects it with no change)
    local out = child("io.write(table.concat({ signals.catch() }, ','))", "trap '' INT; ")
    assert.truthy(out:find("^INT,TERM"), out)
  end)
end)
