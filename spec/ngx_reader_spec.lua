-- The ngx transport's HTTP reader against a raw peer that answers with exactly the bytes we
-- choose: every well-formed answer is read, every malformed one gives a typed error, and
-- hundreds of mutated answers never crash a worker, hang, or raise.
local cjson   = require "cjson"
local nginx   = require "support.nginx"
local rawpeer = require "support.rawpeer"

local OK_BODY = '{"code":0,"msg":"success","data":null}'

local function http(head, body)
  return head:gsub("\n", "\r\n") .. "\r\n" .. (body or "")
end

describe("the ngx transport's HTTP reader", function()
  local srv, peer
  setup(function()
    srv = nginx.start{ server = [[
      location /case/ { content_by_lua_block { require("support.ngx_cases").run() } }
    ]] }
    peer = rawpeer.start()
  end)
  teardown(function()
    if peer then peer:stop() end
    if srv then srv:stop() end
  end)

  local function answer_with(bytes)
    peer:answer(bytes)
    local status, body = srv:get("/case/update?key=k&secret=s&max_retries=0&timeout=2&max_body=4096"
      .. "&base=http%3A%2F%2F127.0.0.1%3A" .. peer.port)
    assert.equal(200, status, body)
    return cjson.decode(body)
  end

  local good = {
    { "Content-Length", http("HTTP/1.1 200 OK\nContent-Length: " .. #OK_BODY
        .. "\nContent-Type: application/json\n", OK_BODY) },
    { "chunked", http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", "5\r\n" .. OK_BODY:sub(1, 5) .. "\r\n"
        .. string.format("%x", #OK_BODY - 5) .. "\r\n" .. OK_BODY:sub(6) .. "\r\n0\r\n\r\n") },
    { "chunked with an extension and a trailer", http("HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n",
        string.format("%x;name=v", #OK_BODY) .. "\r\n" .. OK_BODY .. "\r\n0\r\nX-Trailer: 1\r\n\r\n") },
    { "a body that runs to the close", http("HTTP/1.1 200 OK\nConnection: close\n", OK_BODY) },
    { "HTTP/1.0", http("HTTP/1.0 200 OK\nContent-Length: " .. #OK_BODY .. "\n", OK_BODY) },
    { "folded case and spaces in headers", http("HTTP/1.1 200 OK\ncOnTeNt-LeNgTh:   " .. #OK_BODY .. "  \n",
        OK_BODY) },
  }
  for _, row in ipairs(good) do
    it("reads an answer with " .. row[1], function()
      local r = answer_with(row[2])
      assert.is_true(r.ok, r.message)
      assert.equal(0, r.code)
    end)
  end

  local bad = {
    { "a status line without a code", http("HTTP/1.1 OK\nContent-Length: 2\n", "{}"), "protocol" },
    { "not HTTP at all", "SSH-2.0-OpenSSH_9.2\r\n", "protocol" },
    { "a header line without a colon", http("HTTP/1.1 200 OK\nContent-Length 2\n", "{}"), "protocol" },
    { "a header line of 9 KiB", http("HTTP/1.1 200 OK\nX-Big: " .. string.rep("a", 9000)
        .. "\nContent-Length: 2\n", "{}"), "protocol" },
    { "headers of more than 64 KiB", http("HTTP/1.1 200 OK\n"
        .. string.rep("X-Many: " .. string.rep("b", 4000) .. "\n", 17)
        .. "Content-Length: 2\n", "{}"), "protocol" },
    { "a Content-Length over max_body", http("HTTP/1.1 200 OK\nContent-Length: 5000\n",
        string.rep("z", 5000)), "too_large" },
    { "chunks adding up over max_body", http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
        string.rep("800\r\n" .. string.rep("c", 2048) .. "\r\n", 3) .. "0\r\n\r\n"), "too_large" },
    { "a close-delimited body over max_body", http("HTTP/1.1 200 OK\n", string.rep("d", 6000)), "too_large" },
    { "a malformed chunk size", http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
        "zz\r\nabc\r\n0\r\n\r\n"), "protocol" },
    { "a chunk without its CRLF", http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
        "2\r\n{}XX0\r\n\r\n"), "protocol" },
    { "a chunk size line of 100 bytes", http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
        string.rep("0", 100) .. "2\r\n{}\r\n0\r\n\r\n"), "protocol" },
    { "an unsupported transfer coding", http("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n",
        "xx"), "protocol" },
    { "a negative Content-Length", http("HTTP/1.1 200 OK\nContent-Length: -5\n", "{}"), "protocol" },
    { "a body cut short", http("HTTP/1.1 200 OK\nContent-Length: 100\n", "{\"code\":0"), "reset" },
    { "no answer at all", "", "reset" },
    { "an answer cut inside the headers", "HTTP/1.1 200 OK\r\nContent-Le", "reset" },
  }
  for _, row in ipairs(bad) do
    it("refuses " .. row[1] .. " as " .. row[3], function()
      local r = answer_with(row[2])
      assert.is_false(r.ok)
      assert.equal("TransportError", r.kind)
      assert.equal(row[3], r.reason, r.message)
      assert.is_true(r.sent)
      assert.is_nil(r.raised)
    end)
  end

  it("survives 300 mutated answers: a result or a typed error each time, the worker alive", function()
    math.randomseed(20261123)
    local base = good[1][2] .. ""
    local kinds = {}
    for i = 1, 300 do
      local bytes = {}
      for j = 1, #base do bytes[j] = base:sub(j, j) end
      for _ = 1, math.random(1, 6) do
        if #bytes == 0 then break end
        local op, at = math.random(4), math.random(#bytes)
        if op == 1 then bytes[at] = string.char(math.random(0, 255))
        elseif op == 2 then table.remove(bytes, at)
        elseif op == 3 then table.insert(bytes, at, ({ "\r\n", "\n", ":", " ", "0", "\0" })[math.random(6)])
        else for k = #bytes, at, -1 do bytes[k] = nil end end
      end
      local r = answer_with(table.concat(bytes))
      assert.is_nil(r.raised, "mutation " .. i .. " raised: " .. tostring(r.raised))
      if r.ok then
        kinds.ok = (kinds.ok or 0) + 1
      else
        assert.truthy(r.kind, "mutation " .. i)
        kinds[r.kind .. ":" .. tostring(r.reason)] = true
      end
    end
    assert.is_true((kinds.ok or 0) > 0)
    assert.is_nil(srv:error_log():find("worker process %d+ exited"), "a worker died")
  end)
end)
