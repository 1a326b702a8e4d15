-- doc/rules.md, the list of rules a task must keep, stays true: every rule id the core can
-- report is on it, and each line's example breaks exactly that rule (so every documented id
-- is reported by some case). README points to it, and nothing in the repository points
-- outside the repository.
local core    = require "itnio.core"
local sandbox = require "support.sandbox"
local shell   = require "support.shell"

local ROOT = sandbox.root

local function read(path) return assert(shell.read(ROOT .. "/" .. path), path) end

local function valid_task()
  return { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
    nodeList = { { source = 3, text = "Hello", lan = "en-US", hangUpSms = 0, toSeat = 0 } } }
end

-- The rows of doc/rules.md: { id, example }.
local rows = {}
for line in read("doc/rules.md"):gmatch("[^\n]+") do
  local id, example = line:match("^| (%u%d+) |.*| `([^`]+)` |$")
  if id then rows[#rows + 1] = { id = id, example = example } end
end

-- Every rule id written in the core's sources (schema rows and the rules across fields).
local function core_ids()
  local ids = {}
  local list = io.popen("ls " .. sandbox.shell_quote(ROOT) .. "/csrc/*.c")
  for path in list:lines() do
    local f = assert(io.open(path, "rb"))
    for id in f:read("*a"):gmatch('"([TNA]%d%d?)"') do ids[id] = true end
    f:close()
  end
  list:close()
  return ids
end

describe("doc/rules.md", function()
  it("has one line per rule id, T1..T6, N1..N24, A1..A3", function()
    local seen, want = {}, {}
    for i = 1, 6 do want["T" .. i] = true end
    for i = 1, 24 do want["N" .. i] = true end
    for i = 1, 3 do want["A" .. i] = true end
    for _, r in ipairs(rows) do
      assert.is_nil(seen[r.id], "twice: " .. r.id)
      seen[r.id] = true
    end
    assert.same(want, seen)
  end)

  it("documents every rule id the core can report", function()
    local documented = {}
    for _, r in ipairs(rows) do documented[r.id] = true end
    local ids = core_ids()
    assert.is_true(next(ids) ~= nil)
    for id in pairs(ids) do assert.is_true(documented[id] == true, id .. " is not in doc/rules.md") end
  end)

  for _, r in ipairs(rows) do
    it(r.id .. ": its example breaks exactly that rule (" .. r.example .. ")", function()
      local task = valid_task()
      assert.truthy(core.encode("recall_update", task), "the base task must be valid")
      local env = { task = task, node = task.nodeList[1], string = string }
      local chunk = assert((loadstring or load)(r.example, "=example", "t", env))
      if setfenv then setfenv(chunk, env) end
      chunk()
      local body, errs = core.encode("recall_update", task)
      assert.is_nil(body, "the example did not break any rule")
      for _, e in ipairs(errs) do
        assert.equal(r.id, e.rule,
                     "the example also broke " .. e.rule .. " (" .. e.field .. ": " .. e.message .. ")")
      end
    end)
  end

  it("is where README sends a reader, and nothing in the repository points outside it", function()
    assert.truthy(read("README.md"):find("(doc/rules.md)", 1, true), "README does not link doc/rules.md")
    local out = sandbox.run("cd " .. sandbox.shell_quote(ROOT)
      .. " && git grep -n -I -e '\\.\\./shared' -e 'spec/API\\.md' -e 'vendor-doc-' -e 'DESIGN\\.md' "
      .. "-e 'STYLE\\.md' -- . ':!spec/rules_doc_spec.lua' || true")
    assert.equal("", (out:gsub("%s+$", "")), "paths that lead outside the repository:\n" .. out)
  end)
end)
