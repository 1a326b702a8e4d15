-- Regression, the nginx transport's reader:
-- 1. timeout and deadline did not bound an attempt: cosocket timeouts are per operation and
--    every byte resets them, so a peer that dribbled header lines or a close-delimited body a
--    byte at a time, or streamed chunked trailers forever (their count and size were not
--    limited), held the call as long as it liked;
-- 2. a 1xx interim answer (103 Early Hints) was taken as the final answer (RFC 9110 15.2);
-- 3. an answer with both Transfer-Encoding and Content-Length went back to the keep-alive
--    pool (RFC 9112 6.3: treat it as an error or close the connection after it).
local cjson   = require "cjson"
local socket  = require "socket"
local nginx   = require "support.nginx"
local rawpeer = require "support.rawpeer"

local OK_BODY = '{"code":0,"msg":"success","data":null}'

local function http(head, body)
  return head:gsub("\n", "\r\n") .. "\r\n" .. (body or "")
end

describe("regress: the ngx reader's bounds", function()
  local srv, peer, reused
  setup(function()
    srv = nginx.start{ server = [[
      location /case/ { content_by_lua_block { require("support.ngx_cases").run() } }
    ]] }
    peer = rawpeer.start(".lua")
    reused = peer.file .. ".reused"
  end)
  teardown(function()
    if peer then peer:stop() end
    if srv then srv:stop() end
  end)

  local function answer_with(t, args)
    peer:answer(t)
    local t0 = socket.gettime()
    local status, body = srv:get("/case/" .. (args or "update?max_retries=0&timeout=1")
      .. "&key=k&secret=s&base=http%3A%2F%2F127.0.0.1%3A" .. peer.port)
    assert.equal(200, status, body)
    return cjson.decode(body), socket.gettime() - t0
  end

  it("times out within the attempt's timeout when header lines come a byte at a time #timing", function()
    local r, took = answer_with{ bytes = http("HTTP/1.1 200 OK\n" .. ("X-Slow: 1\n"):rep(40), ""),
                                 dribble = 0.02 }
    assert.equal("timeout", r.reason, r.message)
    assert.is_true(took < 1.6, "took " .. took)
  end)

  it("times out within the attempt's timeout when a close-delimited body dribbles #timing", function()
    local r, took = answer_with{ bytes = http("HTTP/1.1 200 OK\nConnection: close\n",
                                              OK_BODY .. (" "):rep(200)),
                                 dribble = 0.02 }
    assert.equal("timeout", r.reason, r.message)
    assert.is_true(took < 1.6, "took " .. took)
  end)

  it("refuses chunked trailers that never end", function()
    local r, took = answer_with{ bytes = http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n",
      string.format("%x", #OK_BODY) .. "\r\n" .. OK_BODY .. "\r\n0\r\n"), forever = "X-Trailer: 1\r\n" }
    assert.equal("TransportError", r.kind)
    assert.truthy(r.reason == "protocol" or r.reason == "timeout", r.reason)
    assert.is_true(took < 5, "took " .. took)
  end)

  it("bounds the whole call with deadline too #timing", function()
    local r, took = answer_with({ bytes = http("HTTP/1.1 200 OK\n" .. ("X-Slow: 1\n"):rep(40), ""),
                                  dribble = 0.02 },
      "update?max_retries=3&timeout=5&deadline=0.8")
    assert.equal("TransportError", r.kind)
    assert.is_true(took < 1.4, "took " .. took)
  end)

  it("reads past a 103 Early Hints (and a 100 Continue) to the final answer", function()
    local r = answer_with{ bytes = http("HTTP/1.1 103 Early Hints\nLink: </a.css>; rel=preload\n", "")
      .. http("HTTP/1.1 100 Continue\n", "")
      .. http("HTTP/1.1 200 OK\nContent-Length: " .. #OK_BODY .. "\n", OK_BODY) }
    assert.is_true(r.ok, r.message)
    assert.equal(0, r.code)
  end)

  it("refuses a 101 Switching Protocols nobody asked for", function()
    local r = answer_with{ bytes = http("HTTP/1.1 101 Switching Protocols\nUpgrade: h2c\n", "") }
    assert.equal("protocol", r.reason, r.message)
  end)

  it("does not pool a connection whose answer had Transfer-Encoding and Content-Length", function()
    os.remove(reused)
    local bytes = http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nContent-Length: 3\n",
      string.format("%x", #OK_BODY) .. "\r\n" .. OK_BODY .. "\r\n0\r\n\r\n")
    local r = answer_with({ bytes = bytes, keep = true }, "several?n=2&max_retries=0&timeout=2")
    assert.is_true(r[1].ok, r[1].message)
    assert.is_true(r[2].ok, r[2].message)
    assert.is_nil(io.open(reused, "rb"), "the second request rode the same connection")
    -- the same peer with a clean answer is pooled (the check above can fail)
    local clean = http("HTTP/1.1 200 OK\nContent-Length: " .. #OK_BODY .. "\n", OK_BODY)
    r = answer_with({ bytes = clean, keep = true }, "several?n=2&max_retries=0&timeout=2")
    assert.is_true(r[2].ok, r[2].message)
    local f = io.open(reused, "rb")
    assert.truthy(f, "a clean keep-alive answer was not pooled")
    if f then f:close() end
  end)
end)
