-- core.base64_file: a file's Base64 read a chunk at a time, the same text core.base64 makes
-- of its bytes (sizes around the chunk of 48 KiB, and the three paddings), the limit checked
-- while it reads (a pipe, a device that never ends), and a file that cannot be read told,
-- not raised.
local core = require "itnio.core"

-- core.base64_file of the file at path (opened and closed here).
local function of_path(path, max)
  local f = assert(io.open(path, "rb"))
  local text, why = core.base64_file(f, max)
  f:close()
  return text, why
end

local function temp(bytes)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

describe("core.base64_file", function()
  it("gives the text core.base64 gives of the bytes, at every size around a chunk", function()
    local chunk = 48 * 1024
    for _, n in ipairs{ 0, 1, 2, 3, 4, 5, chunk - 1, chunk, chunk + 1, chunk + 2, 3 * chunk + 7 } do
      local bytes = random_bytes(n)
      local path = temp(bytes)
      assert.equal(core.base64(bytes), of_path(path, n), "at " .. n .. " bytes")
      os.remove(path)
    end
  end)

  it("stops one byte past the limit, for a file, a device and a pipe", function()
    local path = temp(string.rep("x", 1000))
    assert.same({ nil, "too large" }, { of_path(path, 999) })
    assert.equal(core.base64(string.rep("x", 1000)), of_path(path, 1000))
    os.remove(path)
    assert.same({ nil, "too large" }, { of_path("/dev/zero", 100000) })
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. fifo))
    assert(os.execute("(head -c 5000 /dev/zero > " .. fifo .. ") &"))
    assert.same({ nil, "too large" }, { of_path(fifo, 4096) })
    os.remove(fifo)
  end)

  it("tells why a file cannot be read, and raises for what is not an open file", function()
    local v, why = of_path("/tmp", 10)   -- a directory opens, but does not read
    assert.is_nil(v)
    assert.truthy(why:find("directory", 1, true), why)
    local f = assert(io.open("/dev/null", "rb"))
    assert.equal("", core.base64_file(f, 10))
    assert.has_error(function() core.base64_file(f, -1) end)
    f:close()
    assert.has_error(function() core.base64_file(f, 10) end)   -- closed
    assert.has_error(function() core.base64_file("/dev/null", 10) end)
    assert.has_error(function() core.base64_file(nil, 10) end)
  end)

  it("reads what is left of the file, from where it stands", function()
    local path = temp("0123456789")
    local f = assert(io.open(path, "rb"))
    f:read(4)
    assert.equal(core.base64("456789"), core.base64_file(f, 100))
    f:close()
    os.remove(path)
  end)
end)
