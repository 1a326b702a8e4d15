-- Regression: libcurl read http_proxy, HTTPS_PROXY and ALL_PROXY from the environment without
-- the user asking, so with a plain-http base_url the key, the Sign and the body went to
-- whatever proxy the environment named. A proxy is now used only when opts.proxy says so:
-- a URL, or true for the environment's.
local socket  = require "socket"
local itnio   = require "itnio"
local sandbox = require "support.sandbox"

local LUA = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local q = sandbox.shell_quote

-- A listener playing a proxy that never answers: did anybody connect, and what did they send?
local function fake_proxy()
  local srv = assert(socket.tcp())
  assert(srv:bind("127.0.0.1", 0))
  assert(srv:listen(8))
  local _, port = srv:getsockname()
  return srv, "http://127.0.0.1:" .. port
end

-- Starts a child Lua that updates a task with the environment's proxy variables pointing at
-- proxy_url; `opts` is Lua source for extra client options. Returns the path of its output.
local function child(sb, proxy_url, opts)
  local out = os.tmpname()
  local script = table.concat({
    "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path",
    "package.cpath = 'build/" .. LUA .. "/?.so;' .. package.cpath",
    "local c = assert(require('itnio').new{ api_key = " .. ("%q"):format(sb.api_key)
      .. ", api_secret = " .. ("%q"):format(sb.api_secret) .. ", base_url = " .. ("%q"):format(sb.http_url)
      .. ", timeout = 1, max_retries = 0" .. opts .. " })",
    "local res, err = c:recall_update{ keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1,"
      .. " nodeList = {} }",
    "print(res and 'RESULT ok' or ('RESULT ' .. tostring(err.reason)))",
  }, "\n")
  local env = "env -u no_proxy -u NO_PROXY http_proxy=" .. q(proxy_url) .. " HTTP_PROXY=" .. q(proxy_url)
    .. " https_proxy=" .. q(proxy_url) .. " ALL_PROXY=" .. q(proxy_url) .. " all_proxy=" .. q(proxy_url)
  os.execute("cd " .. q(sandbox.root) .. " && (" .. env .. " " .. LUA .. " -e "
    .. q(script) .. " > " .. q(out) .. " 2>&1 &)")
  return out
end

local function wait_output(path)
  for _ = 1, 100 do
    local f = io.open(path, "rb")
    local text = f and f:read("*a") or ""
    if f then f:close() end
    if text:find("RESULT", 1, true) then os.remove(path); return text end
    socket.sleep(0.05)
  end
  os.remove(path)
  error("the child gave no result within 5 s")
end

describe("regress: the environment's proxy", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("is not used when the client names no proxy", function()
    local srv, url = fake_proxy()
    local text = wait_output(child(sb, url, ""))
    srv:settimeout(0)
    local conn = srv:accept()
    srv:close()
    assert.is_nil(conn, "a connection reached the environment's proxy")
    assert.truthy(text:find("RESULT ok", 1, true), text)
    assert.equal(1, sb:stats().accepted)
  end)

  it("is used when the client says proxy = true", function()
    local srv, url = fake_proxy()
    local out = child(sb, url, ", proxy = true")
    srv:settimeout(5)
    local conn = srv:accept()
    assert.truthy(conn, "nothing came to the environment's proxy")
    conn:settimeout(2)
    local line = conn:receive("*l")
    conn:close()
    srv:close()
    assert.truthy(line and line:find("^POST http://127%.0%.0%.1:%d+/voice/recallFlow/update"), line)
    local text = wait_output(out)
    assert.truthy(text:find("RESULT", 1, true), text)
    assert.equal(0, sb:stats().requests)
  end)

  it("takes a proxy URL given as proxy, in process and through a job", function()
    local srv, url = fake_proxy()
    local c = assert(itnio.new{ api_key = sb.api_key, api_secret = sb.api_secret, base_url = sb.http_url,
                                proxy = url, timeout = 1, max_retries = 0 })
    local job = assert(c:start_recall_update{ keyId = 299, recallType = 0, recallInterval = 30,
                                              recallNum = 1, nodeList = {} })
    srv:settimeout(0)
    local conn
    for _ = 1, 200 do
      c:poll(0.01)
      conn = conn or srv:accept()
      if conn and job:done() then break end
    end
    assert.truthy(conn, "nothing came to the proxy")
    conn:close()
    srv:close()
    while c:poll(0.05) > 0 do end
    local _, err = job:result()
    assert.truthy(err)
    assert.equal(0, sb:stats().requests)
  end)

  it("refuses a proxy that is neither a URL nor true", function()
    for _, bad in ipairs{ false, 1, "http://a\r\nX: y" } do
      local c, err = itnio.new{ api_key = "k", api_secret = "spec-secret", proxy = bad }
      assert.is_nil(c)
      assert.equal("ConfigError", err.kind)
    end
  end)
end)
