-- Regression: under a numeric locale whose decimal point is more than one byte (ps_AF.UTF-8:
-- U+066B, two bytes), json_out.c replaced only the first byte and wrote an invalid body, so
-- what was checked was not what was sent. Numbers must be written the same in every locale
-- (and without setlocale games, which are not thread-safe).
local core = require "itnio.core"

local function task(rate)
  return { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,
    nodeList = { { source = 3, text = "x", lan = "en-US", hangUpSms = 0, toSeat = 0, speakingRate = rate } } }
end

local RATES = { 0.25, 1.25, 1.5, 2.1, 3.999999999999999, 1 / 3, 0.3000000000000001, 4 }

describe("regress: the numeric locale", function()
  for _, name in ipairs{ "de_DE.UTF-8", "ps_AF.UTF-8" } do
    it("does not change the body: " .. name, function()
      local expected = {}
      for i, r in ipairs(RATES) do expected[i] = assert(core.encode("recall_update", task(r))) end
      local set = os.setlocale(name, "numeric")
      local ok, e = pcall(function()
        assert(set, "the locale " .. name .. " is missing here: `make deps` makes it (tools/install-deps)")
        if not jit then   -- (LuaJIT formats numbers itself, whatever the locale)
          assert.not_equal(".", string.format("%.1f", 0.5):sub(2, 2))   -- the locale is in force
        end
        for i, r in ipairs(RATES) do
          local body = assert(core.encode("recall_update", task(r)))
          assert.equal(expected[i], body)
          local num = body:match('"speakingRate":([^,}]+)')
          assert.truthy(num:match("^%-?%d+%.?%d*$") or num:match("^%-?%d+%.?%d*e[%+%-]%d+$"), num)
        end
        -- a refusal's message shows the range in JSON's notation too
        local _, errs = core.encode("recall_update", task(9.5))
        assert.truthy(errs[1].message:find("0.25", 1, true), errs[1].message)
      end)
      os.setlocale("C", "numeric")
      assert(ok, e)
    end)
  end
end)
