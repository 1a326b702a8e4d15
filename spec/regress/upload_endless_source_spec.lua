-- Regression: recall.upload_file had no limit on a source with no size. It read /dev/zero
-- (whose size reads as 0) or an endless FIFO to the end, even with max_bytes = 1 MiB, until
-- memory ran out. Reading now stops one byte past the limit.
local recall = require "itnio.recall"

local MiB = 1024 * 1024

describe("recall.upload_file on a source with no size", function()
  it("stops at the limit on /dev/zero", function()
    local before = collectgarbage("count")
    local node, err = recall.upload_file("/dev/zero", "zero.wav", { max_bytes = MiB })
    assert.is_nil(node)
    assert.equal("/dev/zero: too large to upload (more than 1048576 bytes; the limit is 1048576)", err)
    collectgarbage()
    assert.is_true(collectgarbage("count") - before < 8 * 1024, "memory grew by more than 8 MiB")
  end)

  it("stops at the limit on a FIFO that never ends", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir .. " && mkfifo " .. dir .. "/endless"))
    -- a writer that would go on for 64 MiB; it dies of SIGPIPE once the reader stops
    os.execute("(head -c " .. 64 * MiB .. " /dev/zero > " .. dir .. "/endless 2>/dev/null &)")
    local node, err = recall.upload_file(dir .. "/endless", "fifo.wav", { max_bytes = 2 * MiB })
    os.execute("rm -rf " .. dir)
    assert.is_nil(node)
    assert.truthy(err:find("too large to upload (more than 2097152 bytes", 1, true), err)
  end)

  it("still takes a FIFO that ends within the limit, whole", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir .. " && mkfifo " .. dir .. "/short"))
    os.execute("(printf 'RIFFdata' > " .. dir .. "/short &)")
    local node = assert(recall.upload_file(dir .. "/short", "short.wav", { max_bytes = 8 }))
    os.execute("rm -rf " .. dir)
    assert.equal("UklGRmRhdGE=", node.baseFile)
  end)
end)
