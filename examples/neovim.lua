-- Jobs inside Neovim: its own libuv loop (vim.loop) drives them while the editor goes on, the
-- results shown as they arrive. Neovim runs LuaJIT: it needs the LuaJIT core. From the
-- repository root, after `make LUA=luajit`, against a sandbox:
--   ITNIO_BASE_URL=http://127.0.0.1:18080 nvim --headless -u NONE \
--     --cmd 'lua package.path = "lua/?.lua;lua/?/init.lua;" .. package.path' \
--     --cmd 'lua package.cpath = "build/luajit/?.so;" .. package.cpath' -c 'luafile examples/neovim.lua'
-- In an editor, :luafile it the same way; headless, it quits when the updates have ended, with
-- status 0 when every one succeeded (:cquit).
-- luacheck: read globals vim
local uv = vim.loop
local run = dofile("examples/updates.lua").start()
local client = run.client

local poll = uv.new_poll(assert(client:pollfd()))
local timer = uv.new_timer()

-- The handles' callbacks run in libuv's callback context, where most of the editor's API
-- may not be called: the jobs' work is plain Lua, and what touches the editor is scheduled.
local function drive()
  client:poll(0)
  timer:stop()
  if run:finished() then
    poll:close()
    timer:close()
    vim.schedule(function()
      local status = run:report()
      if #vim.api.nvim_list_uis() == 0 then vim.cmd("cquit " .. status) end   -- headless: done
    end)
    return
  end
  local s = client:timeout()
  if s then timer:start(math.ceil(s * 1000), 0, drive) end
end

poll:start("r", drive)
drive()
