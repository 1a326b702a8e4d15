-- The project's pages (README.md, doc/*.md) as the specs read them, so that every command and
-- code block of a page is run or checked by a spec. Runs under Lua 5.1 (LuaJIT) .. 5.4.
--
--   local docs = require "support.docs"
--   docs.read(page)                          the page's text ("README.md", "doc/campaigns.md")
--   docs.pages()                             README.md and every doc/*.md, sorted
--   docs.section(page, heading)              from the heading line ("## Jobs") to the next
--                                            heading of its level or above
--   docs.blocks(page)                        every fenced block: { heading, lang, n, text, line }
--                                            (n: its rank among its section's blocks of lang)
--   docs.block(page, heading, lang [, n])    the text of one of them (raises when it is not there)
--   docs.key(page, heading, lang, n)         the name a coverage table files a block under
--   docs.commands(text)                      a shell block's commands: each line continued with
--                                            "\" joined, comments and blank lines left out
--   docs.substitute(text, { {from, to}, ... })   each from replaced (plainly); raises if absent
--   docs.chunk(code, name, env)              a Lua block loaded with env as its globals
--   docs.indented(page)                      lines that start an indented code block (a page
--                                            fences its blocks, so that they are seen here)
--   docs.Coverage()                          the blocks a spec file runs or checks:
--                                            cov:claim(page, heading, lang, n) -> the block's text
--                                            (raises when it is gone); cov:unclaimed(pages) -> the
--                                            blocks of those pages that no one claimed
local shell = require "support.shell"

local D = {}

function D.read(page)
  return assert(shell.read(shell.root .. "/" .. page), page)
end

function D.pages()
  local out, ok = shell.run("cd " .. shell.quote(shell.root) .. " && ls doc/*.md")
  assert(ok, out)
  local list = { "README.md" }
  for p in out:gmatch("[^\n]+") do list[#list + 1] = p end
  table.sort(list)
  return list
end

-- The page's lines, each { text, fenced }: fenced is true for a fence line or a line inside one.
local function lines(text)
  local t, inside = {}, false
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    local fence = l:match("^%s*```") ~= nil
    t[#t + 1] = { text = l, fenced = inside or fence }
    if fence then inside = not inside end
  end
  return t
end

local function heading_level(l)
  local hashes = l.fenced == false and l.text:match("^(#+) ")
  return hashes and #hashes or nil
end

function D.section(page, heading)
  local ls, from = lines(D.read(page)), nil
  local level = #heading:match("^(#+) ")
  local out = {}
  for _, l in ipairs(ls) do
    if from then
      local lv = heading_level(l)
      if lv and lv <= level then break end
      out[#out + 1] = l.text
    elseif l.text == heading and not l.fenced then
      from = true
      out[1] = l.text
    end
  end
  assert(from, page .. " has no heading " .. heading)
  return table.concat(out, "\n") .. "\n"
end

function D.blocks(page)
  local blocks, heading, count = {}, "(top)", {}
  local open
  for i, l in ipairs(lines(D.read(page))) do
    if open then
      if l.text:match("^%s*```%s*$") then
        local lang = open.lang
        local key = heading .. "\0" .. lang
        count[key] = (count[key] or 0) + 1
        blocks[#blocks + 1] = { heading = heading, lang = lang, n = count[key], line = open.line,
                                text = table.concat(open.body, "\n") .. "\n" }
        open = nil
      else
        open.body[#open.body + 1] = l.text:sub(open.indent + 1)
      end
    else
      local indent, lang = l.text:match("^(%s*)```(%S*)%s*$")
      if indent then
        open = { lang = lang, line = i, indent = #indent, body = {} }
      elseif heading_level(l) then
        heading = l.text
      end
    end
  end
  assert(not open, page .. ": a fence opened at line " .. (open and open.line or 0) .. " is never closed")
  return blocks
end

function D.key(page, heading, lang, n)
  return ("%s, %s, the %s block #%d"):format(page, heading, lang == "" and "unnamed" or lang, n or 1)
end

function D.block(page, heading, lang, n)
  for _, b in ipairs(D.blocks(page)) do
    if b.heading == heading and b.lang == lang and b.n == (n or 1) then return b.text end
  end
  error("no such block: " .. D.key(page, heading, lang, n), 2)
end

function D.commands(text)
  local out, pending = {}, nil
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    if not l:match("^%s*#") and l:match("%S") then
      l = l:gsub("%s+#%s.*$", "")
      local cont = l:match("^(.-)%s*\\$")
      local piece = cont or l
      pending = pending and (pending .. " " .. piece:gsub("^%s+", "")) or piece
      if not cont then
        out[#out + 1] = pending
        pending = nil
      end
    end
  end
  if pending then out[#out + 1] = pending end
  return out
end

function D.substitute(text, pairs_list)
  for _, p in ipairs(pairs_list) do
    local s, e = text:find(p[1], 1, true)
    assert(s, "the block no longer holds " .. p[1] .. ":\n" .. text)
    repeat
      text = text:sub(1, s - 1) .. p[2] .. text:sub(e + 1)
      s, e = text:find(p[1], s + #p[2], true)
    until not s
  end
  return text
end

function D.chunk(code, name, env)
  local chunk
  if setfenv then   -- Lua 5.1 and LuaJIT
    chunk = assert(loadstring(code, "=" .. name))
    setfenv(chunk, env)
  else
    chunk = assert(load(code, "=" .. name, "t", env))
  end
  return chunk
end

function D.indented(page)
  local found, prev_blank = {}, true
  for i, l in ipairs(lines(D.read(page))) do
    if not l.fenced and prev_blank and l.text:match("^    %S") then found[#found + 1] = page .. ":" .. i end
    prev_blank = l.text:match("^%s*$") ~= nil
  end
  return found
end

local Coverage = {}
Coverage.__index = Coverage

function D.Coverage()
  return setmetatable({ claimed = {} }, Coverage)
end

function Coverage:claim(page, heading, lang, n)
  self.claimed[D.key(page, heading, lang, n)] = true
  return D.block(page, heading, lang, n)
end

function Coverage:unclaimed(pages)
  local out = {}
  for _, page in ipairs(pages) do
    for _, b in ipairs(D.blocks(page)) do
      local k = D.key(page, b.heading, b.lang, b.n)
      if not self.claimed[k] then out[#out + 1] = k .. " (line " .. b.line .. ")" end
    end
  end
  return out
end

return D
