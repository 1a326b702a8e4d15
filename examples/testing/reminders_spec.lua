-- The spec of a module of your own (examples/testing/reminders.lua), written as you would:
-- the vendor is itnio.testing's double, in this process, playing the API's rules and the
-- faults you script. `make check` runs it.
local itnio = require "itnio"
local testing = require "itnio.testing"
local reminders = require "reminders"

describe("reminders.repace", function()
  local vendor, client
  before_each(function()
    local transport
    transport, vendor = testing.vendor{ api_key = "test-key", api_secret = "test-secret" }
    client = itnio.new{ api_key = "test-key", api_secret = "test-secret", transport = transport,
                        backoff_base = 0, backoff_cap = 0 }
  end)

  it("updates the task with the reminder's text", function()
    assert.is_true(reminders.repace(client, 299, "Your parcel arrives tomorrow"))
    local stored = vendor.task(299)
    assert.equal(1, stored.updates)
    assert.equal(30, stored.task.recallInterval)
    assert.equal("Your parcel arrives tomorrow", stored.task.nodeList[1].text)
  end)

  it("rides out one 503: the client retries", function()
    vendor.fault{ kind = "status", status = 503, count = 1 }
    assert.is_true(reminders.repace(client, 299, "Hello"))
    assert.equal(2, #vendor.requests())
  end)

  it("tells the operator to try later when the vendor keeps failing", function()
    vendor.fault{ kind = "code", code = -18, count = 3 }
    local ok, why = reminders.repace(client, 299, "Hello")
    assert.is_nil(ok)
    assert.matches("try again later", why)
  end)

  it("passes on the vendor's refusal of a task that is not Pending", function()
    local ok, why = reminders.repace(client, 300, "Hello")
    assert.is_nil(ok)
    assert.matches("refused task 300: .*not Pending", why)
    assert.equal(0, vendor.task(300).updates)
  end)
end)
