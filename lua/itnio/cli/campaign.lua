--- Campaigns: a file of tasks (JSON Lines, one task object a line) sent through one client,
-- paced, resumable, with one result a line. `itnio <command> --batch FILE` runs one; this
-- module (part of the command line's unit) is its engine, so that a program of yours can
-- run one the same way:
--
--     local campaign = require "itnio.cli.campaign"
--     local status = campaign.run{
--       client = client, endpoint = "recall_update",
--       input = io.open("tasks.jsonl", "rb"), size = 123456,
--       journal = "tasks.jsonl.journal", out = io.stdout,
--       concurrency = 8 }
--
-- Reading streams: a line is read, started and forgotten, so a file of millions of lines
-- runs in memory bounded by the concurrency, apart from the journal's index (a number or
-- two a line, for a journal of that many lines).
--
-- Each line ends in exactly one of four outcomes, which the journal records and the exit
-- status sums up: `updated`; `refused` (the API said no: do not resend as it is); `broken`
-- (not a JSON object, or a task that breaks a rule: nothing was sent); `retry` (no answer,
-- HTTP 429 or 5xx, the vendor's -18, the run's deadline: worth sending again).
--
-- The journal is a text file: a header line naming the input (its size and a hash of its
-- first 64 KiB), then one line per ended line, the same JSON object the results get,
-- appended whole and unbuffered as the line ends. A later run with the same journal skips
-- the lines whose last record is updated, refused or broken, and sends the rest again.
-- @module itnio.cli.campaign
local core    = require "itnio.core"
local errors  = require "itnio.errors"
local signals = require "itnio.cli.signals"
local cjson   = require("cjson.safe").new()

local type, tostring, ipairs = type, tostring, ipairs
local floor, min, huge = math.floor, math.min, math.huge
local format, find, sub, byte, concat = string.format, string.find, string.sub, string.byte, table.concat

local _M = {}

--- The most one task may be, in bytes, as a line of a campaign or a file of its own: a task
-- that uploads a 64 MiB audio file (recall.upload_file's limit) is about 86 MiB of JSON; past
-- this, the input is a mistake (/dev/zero, a disk image).
_M.MAX_TASK = 100 * 1024 * 1024

--- MAX_TASK, as messages say it.
_M.MAX_TASK_TEXT = "100 MiB"
local CHUNK = 64 * 1024           -- what a read takes, and what the journal's hash covers
local HEAD = 64 * 1024
local LINES_A_TURN = 512          -- lines one turn of the loop reads at most (then it polls)

-- Outcomes, and what each means for the exit status (HELP in bin/itnio).
local UPDATED, REFUSED, BROKEN, RETRY = "updated", "refused", "broken", "retry"
_M.OUTCOMES = { UPDATED, REFUSED, BROKEN, RETRY }

--- The outcome of a result object (as the results and the journal hold it).
-- @tparam table r a result object
-- @treturn string "updated", "refused", "broken" or "retry"
function _M.outcome(r)
  if r.ok == true then return UPDATED end
  if r.kind == "ValidationError" or r.kind == "InputError" then return BROKEN end
  if r.retryable == true then return RETRY end
  return REFUSED
end

--- The exit status of a run from its counts by outcome: 0 all updated, 4 any worth retrying,
-- else 1 any refused, else 3 any broken.
-- @tparam table counts outcome -> number
-- @treturn int the status
function _M.exit_status(counts)
  if (counts[RETRY] or 0) > 0 then return 4 end
  if (counts[REFUSED] or 0) > 0 then return 1 end
  if (counts[BROKEN] or 0) > 0 then return 3 end
  return 0
end

-- ---------------------------------------------------------------------------------------
-- Results: one JSON object a line, its keys in a fixed order (a reader of the file sees them
-- as doc/campaigns.md shows them).

local encode = cjson.encode
local function json_value(v)
  if v == nil or v == cjson.null then return "null" end
  local t = type(v)
  if t == "number" then
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%.0f", v) end
    return encode(v) or "null"
  end
  if t == "string" or t == "boolean" then return encode(v) or "null" end
  return "null"
end

-- Appends {"k":v,...} of the keys in order to buffer b (at n), values through json_value:
-- the new n.
local function put_object(b, n, keys, values)
  for i = 1, #keys do
    local k = keys[i]
    b[n + 1] = i == 1 and '{"' or ',"'
    b[n + 2] = k
    b[n + 3] = '":'
    b[n + 4] = json_value(values[k])
    n = n + 4
  end
  b[n + 1] = "}"
  return n + 1
end

local function object(keys, values)
  local b = {}
  put_object(b, 0, keys, values)
  return concat(b)
end

local FAIL_KEYS = { "line", "keyId", "ok", "kind", "reason", "code", "message", "http_status",
                    "retry_after", "retryable", "attempts" }
local RULE_KEYS = { "rule", "field", "message" }

local function key_id(task)
  local k = type(task) == "table" and task.keyId or nil
  if type(k) == "number" or type(k) == "string" then return k end
  return nil
end

--- The result line of an ended line (no newline).
-- @tparam int n the line's number
-- @tparam any kid its keyId (nil when it has none)
-- @tparam table|nil res the answer
-- @tparam table|nil err the error
-- @treturn string the JSON object
function _M.result_line(n, kid, res, err)
  if res then
    return '{"line":' .. n .. ',"keyId":' .. json_value(kid) .. ',"ok":true,"attempts":'
      .. json_value(res.attempts or 0) .. "}"
  end
  local v = { line = n, keyId = kid, ok = false, kind = err.kind, reason = err.reason, code = err.code,
              message = err.message, http_status = err.http_status, retry_after = err.retry_after,
              retryable = err.retryable == true, attempts = err.attempts or 0 }
  local b = {}
  local m = put_object(b, 0, FAIL_KEYS, v)
  local list = err.errors
  if list then
    b[m] = ',"errors":['
    for i = 1, #list do
      if i > 1 then m = m + 1; b[m] = "," end
      m = put_object(b, m, RULE_KEYS, list[i])
    end
    b[m + 1] = "]}"
  end
  return concat(b)
end

-- An error for a line that is no task.
local function input_error(message)
  return errors.InputError.new{ message = message, attempts = 0 }
end

-- ---------------------------------------------------------------------------------------
-- Reading: lines out of chunks, at most MAX_LINE each, never the whole file at once.

--- A line reader over a file handle: `next()` -> number, text | number, nil, why (a line too
-- long) | nil at the end, or when a read failed (then `read_error` says why). Counts every
-- line, blank ones too; takes off
-- a CR before the LF, and a UTF-8 byte order mark at the very start. `consumed` is the bytes
-- read so far; `head` the first 64 KiB (for the journal's hash) once read.
-- @tparam file f the input
-- @tparam[opt] int max_line the longest line (MAX_LINE)
-- @treturn table the reader
function _M.reader(f, max_line)
  max_line = max_line or _M.MAX_TASK
  local r = { consumed = 0, n = 0 }
  local buf, pos, eof = "", 1, false
  local parts, plen, skipping = nil, 0, false   -- a line longer than one chunk, in pieces

  local function fill()
    if eof then return false end
    local chunk, err = f:read(CHUNK)
    if not chunk then
      if err then r.read_error = err end
      eof = true
      return false
    end
    if r.consumed == 0 and sub(chunk, 1, 3) == "\239\187\191" then chunk = sub(chunk, 4) end
    if not r.head then r.head = sub(chunk, 1, HEAD) end
    r.consumed = r.consumed + #chunk
    buf, pos = chunk, 1
    return true
  end

  local function next_line()
    while true do
      local nl = find(buf, "\n", pos, true)
      if nl then
        local piece = sub(buf, pos, nl - 1)
        pos = nl + 1
        r.n = r.n + 1
        if skipping then
          skipping, parts, plen = false, nil, 0
          return r.n, nil, "the line is longer than " .. _M.MAX_TASK_TEXT
        end
        local line = piece
        if parts then
          parts[#parts + 1] = piece
          line, parts, plen = concat(parts), nil, 0
        end
        if byte(line, -1) == 13 then line = sub(line, 1, -2) end
        return r.n, line
      end
      -- no newline in what is left: keep it (or drop it, past the limit) and read on
      local rest = sub(buf, pos)
      buf, pos = "", 1
      if #rest > 0 and not skipping then
        plen = plen + #rest
        if plen > max_line then
          skipping, parts = true, nil
        else
          parts = parts or {}
          parts[#parts + 1] = rest
        end
      end
      if not fill() then
        if r.read_error then return nil end   -- (the caller reads read_error)
        if skipping or parts then   -- a last line without its newline
          r.n = r.n + 1
          local line = parts and concat(parts) or nil
          local was = skipping
          skipping, parts, plen = false, nil, 0
          if was then return r.n, nil, "the line is longer than " .. _M.MAX_TASK_TEXT end
          if byte(line, -1) == 13 then line = sub(line, 1, -2) end
          return r.n, line
        end
        return nil
      end
    end
  end
  r.next = next_line
  return r
end

-- ---------------------------------------------------------------------------------------
-- The journal

-- A cheap hash of text (a polynomial one, exact in doubles on every Lua): 8 hex digits.
local function hash(s)
  local h = 0
  for i = 1, #s do h = (h * 31 + byte(s, i)) % 4294967296 end
  return format("%08x", h)
end

local function header_of(size, head)
  return { itnio_journal = 1, size = size, head = hash(head or ""), head_bytes = #(head or "") }
end

local function header_line(h)
  return object({ "itnio_journal", "size", "head", "head_bytes" }, h)
end

-- Whether a journal's header was written for this input; else why not.
local function same_input(old, new)
  if old.itnio_journal ~= 1 then return false, "it is no itnio journal (or of another version)" end
  if old.size ~= nil and old.size ~= cjson.null and new.size ~= nil and old.size ~= new.size then
    return false, format("the input had %s bytes then and has %s now", json_value(old.size),
                         json_value(new.size))
  end
  -- (a head is the first HEAD bytes, or the whole input when shorter: a length that differs
  -- is an input that differs there)
  if old.head_bytes ~= new.head_bytes or old.head ~= new.head then
    return false, "the input's first lines differ"
  end
  return true
end

-- Keeps the first n bytes of a file (through a copy beside it, renamed over it).
local function rewrite(path, n)
  local src, dst = io.open(path, "rb"), io.open(path .. ".tmp", "wb")
  if not (src and dst) then
    if src then src:close() end
    return nil, "cannot repair the journal " .. path .. " (its last record was cut short)"
  end
  while n > 0 do
    local chunk = src:read(min(n, CHUNK))
    if not chunk then break end
    dst:write(chunk)
    n = n - #chunk
  end
  src:close()
  dst:close()
  local ok, err = os.rename(path .. ".tmp", path)
  if not ok then return nil, "cannot repair the journal: " .. tostring(err) end
  return true
end

--- Opens a journal for an input: the journal, or nil and why (the journal is another
-- input's, or cannot be read or written). It reads what an earlier run recorded: the
-- outcome of each line (the last record wins) and where its record is, to tell it again.
-- @tparam string path the journal's file
-- @tparam number|nil size the input's size in bytes (nil: unknown, as for standard input)
-- @tparam string head the input's first 64 KiB (or all of it, when shorter)
-- @treturn table the journal
function _M.journal(path, size, head)
  local j = { path = path, outcome = {}, at = {}, header = header_of(size, head) }
  local f = io.open(path, "rb")
  local cut, need_nl
  if f then
    local first = f:read("*l")
    if first and first ~= "" then
      local h = cjson.decode(first)
      if type(h) ~= "table" then
        f:close()
        return nil, "the journal " .. path .. " does not start with a journal's header"
      end
      local ok, why = same_input(h, j.header)
      if not ok then
        f:close()
        return nil, "the journal " .. path .. " was made for another input (" .. why
          .. "): name another --journal, or delete this one to start over"
      end
      local offset, last_at, last_whole = #first + 1, nil, true
      while true do
        local line = f:read("*l")
        if not line then break end
        local rec = cjson.decode(line)
        last_at, last_whole = offset, false
        if type(rec) == "table" and type(rec.line) == "number" and rec.ok ~= nil then
          j.outcome[rec.line] = _M.outcome(rec)
          j.at[rec.line] = offset
          last_whole = true
        end   -- (a record cut short by a kill is no record: that line is sent again)
        offset = offset + #line + 1
      end
      if offset > f:seek("end") then   -- the last line has no newline: a kill cut it short
        if last_whole then need_nl = true else cut = last_at end
      end
      j.had_header = true
    end
    f:close()
  end
  if cut then   -- the record a kill cut short goes: the journal is whole records only
    local ok, why = rewrite(path, cut)
    if not ok then return nil, why end
  end
  local w, err = io.open(path, "ab")
  if not w then return nil, "cannot write the journal: " .. tostring(err) end
  w:setvbuf("no")   -- each record goes out whole, as it ends
  if need_nl then w:write("\n") end
  if not j.had_header then w:write(header_line(j.header) .. "\n") end
  j.file = w
  return j
end

-- A record, told again from the journal (its line of text), or nil.
local function told(j, n)
  local at = j.at[n]
  if not at then return nil end
  local f = j.reread
  if not f then
    f = io.open(j.path, "rb")
    j.reread = f
  end
  if not f or not f:seek("set", at) then return nil end
  return f:read("*l")
end

-- ---------------------------------------------------------------------------------------
-- Progress and the summary

local function clock_text(s)
  if s ~= s or s == huge then return "?" end
  s = floor(s + 0.5)
  if s >= 3600 then return format("%dh%02dm", floor(s / 3600), floor(s % 3600 / 60)) end
  if s >= 60 then return format("%dm%02ds", floor(s / 60), s % 60) end
  return format("%ds", s)
end

--- How many lines of a file hold a task (blank ones do not), read at memory speed; the file
-- is left where it was. nil for an input that cannot seek (a pipe).
-- @param f the input
function _M.count_lines(f)
  local at = f:seek()
  if not at then return nil end
  local n, inside = 0, false   -- inside: in a line already counted
  while true do
    local chunk = f:read(CHUNK)
    if not chunk then break end
    local i = 1
    while true do
      if inside then   -- to the end of the line
        local nl = find(chunk, "\n", i, true)
        if not nl then break end
        inside, i = false, nl + 1
      else             -- to the next line's first character that is not blank
        local c = find(chunk, "[^ \t\r\n]", i)
        if not c then break end
        n, inside, i = n + 1, true, c
      end
    end
  end
  f:seek("set", at)
  return n
end

local function progress_text(st, now)
  local elapsed = now - st.t0
  local total = st.total or (st.eof and st.tasks) or nil
  local rps = elapsed > 0 and st.requests / elapsed or 0
  -- The time left, from the lines this run ended itself: those its journal tells again end
  -- at once, now and later (st.told of st.to_tell so far).
  local left = "?"
  local own = st.ended - st.told
  if total and own > 0 then
    local rest = total - st.ended - (st.to_tell - st.told)
    left = clock_text(rest > 0 and elapsed * rest / own or 0)
  end
  local failed = st.counts[REFUSED] + st.counts[BROKEN] + st.counts[RETRY]
  local paused = now < (st.paused_until or 0) and ", paused: the breaker is open" or ""
  local of = total and format("%d/%d lines (%d%%)", st.ended, total,
                              total > 0 and floor(100 * st.ended / total) or 100)
    or format("%d/? lines", st.ended)
  return format("itnio: %s, %d updated, %d failed, %.1f req/s, %s left%s",
                of, st.counts[UPDATED], failed, rps, left, paused)
end

local function summary(st, now, dry_run)
  local c, jc = st.counts, st.from_journal
  local elapsed = now - st.t0
  local lines = {}
  if dry_run then
    lines[1] = format("itnio: %d line(s) checked (a dry run, nothing sent): %d pass, %d broken",
                      st.ended, c[UPDATED], c[BROKEN])
  else
    lines[1] = format("itnio: %d line(s) ended: %d updated, %d refused by the API, %d broken, "
                        .. "%d worth retrying",
                      st.ended, c[UPDATED], c[REFUSED], c[BROKEN], c[RETRY])
  end
  local from = jc[UPDATED] + jc[REFUSED] + jc[BROKEN]
  if from > 0 then
    lines[#lines + 1] = format("itnio: %d of them from the journal (%d updated, %d refused, %d broken)",
                               from, jc[UPDATED], jc[REFUSED], jc[BROKEN])
  end
  lines[#lines + 1] = format("itnio: %d request(s) in %.1f s, %.1f a second", st.requests, elapsed,
                             elapsed > 0 and st.requests / elapsed or 0)
  if st.stopped then
    lines[#lines + 1] = format("itnio: stopped by SIG%s: the lines in flight ended; the rest were not read",
                               st.stopped)
  end
  if c[RETRY] > 0 and st.journal then
    lines[#lines + 1] = "itnio: run again with the same journal to resend the lines worth retrying: "
      .. st.journal.path
  end
  return concat(lines, "\n") .. "\n"
end

-- ---------------------------------------------------------------------------------------
-- The run

--- Runs a campaign. opts: `client` (an itnio client), `endpoint` (its name),
-- `input` (a file handle), `size` (its bytes, or nil), `journal` (a path, or nil),
-- `out` (a file handle for the results), `concurrency` (8), `deadline` (seconds for the
-- whole run, or nil), `dry_run` (check every line, send nothing), `passthrough`,
-- `progress` (a file handle to redraw a progress line on, or nil), `log` (a file handle for
-- the summary, or nil), `signals` (true: stop at the first SIGINT or SIGTERM; see
-- itnio.cli.signals). Returns the exit status, the counts by outcome, and the signal that
-- stopped the run ("INT", "TERM") or nil; or nil and a message when the journal cannot be used.
-- @tparam table opts the run's options
-- @treturn int|nil the exit status
-- @treturn table|string the counts by outcome, or why the run could not start
-- @treturn string|nil the signal that stopped it
function _M.run(opts)
  local client, out = opts.client, opts.out
  local concurrency = opts.concurrency or 8
  local start_m, prepare_m = "start_" .. opts.endpoint, "prepare_" .. opts.endpoint
  local reader = _M.reader(opts.input)
  local now = core.now
  local st = { t0 = now(), lines = 0, tasks = 0, ended = 0, told = 0, to_tell = 0, requests = 0,
               inflight = 0, eof = false, counts = {}, from_journal = {},
               total = opts.progress and opts.size and _M.count_lines(opts.input) or nil }
  for _, o in ipairs(_M.OUTCOMES) do st.counts[o], st.from_journal[o] = 0, 0 end
  local deadline_at = opts.deadline and st.t0 + opts.deadline or nil

  -- The first line is read before the journal opens: the journal's header needs the input's
  -- first 64 KiB (the reader reads them with it).
  local pending_n, pending_text, pending_why = reader.next()
  if reader.read_error then return nil, "cannot read the input: " .. tostring(reader.read_error) end
  local j
  if opts.journal and not opts.dry_run then
    local why
    j, why = _M.journal(opts.journal, opts.size, reader.head or "")
    if not j then return nil, why end
    st.journal = j
    for _, o in pairs(j.outcome) do   -- (the lines it will tell again)
      if o ~= RETRY then st.to_tell = st.to_tell + 1 end
    end
  end

  local function ended(n, kid, res, err, text)
    text = text or _M.result_line(n, kid, res, err)
    local o = res and UPDATED or _M.outcome(err)
    st.counts[o] = st.counts[o] + 1
    st.ended = st.ended + 1
    if j then j.file:write(text .. "\n") end
    out:write(text, "\n")
  end

  -- Lines the client's breaker refused (CircuitOpenError): they wait, in order, and go again
  -- once it lets calls through; nothing new starts meanwhile.
  local again, ahead = {}, 1
  st.paused_until = 0

  local send   -- (below)
  local function start(n, line)
    local task, jerr = cjson.decode(line)
    if type(task) ~= "table" or not find(line, "^[ \t]*{") then
      local what = jerr or (type(task) == "table" and "an array" or type(task))
      return ended(n, nil, nil, input_error("the line is not a JSON object (" .. tostring(what) .. ")"))
    end
    return send(n, task)
  end

  send = function(n, task)
    local kid = key_id(task)
    if opts.dry_run then
      local req, err = client[prepare_m](client, task, opts.passthrough and { passthrough = true } or nil)
      if req then return ended(n, kid, { attempts = 0 }) end
      return ended(n, kid, nil, err)
    end
    local copts = { passthrough = opts.passthrough or nil }
    if deadline_at then
      local left = deadline_at - now()
      if left <= 0 then
        return ended(n, kid, nil, errors.TransportError.new{ reason = "deadline", retryable = true,
          sent = false, attempts = 0,
          message = format("the run's deadline of %gs passed before the line was sent", opts.deadline) })
      end
      copts.deadline = min(left, 86400)
    end
    copts.on_done = function(res, err)
      st.inflight = st.inflight - 1
      st.requests = st.requests + ((res or err).attempts or 0)
      if err and err.kind == "CircuitOpenError" and not st.stopped then
        again[#again + 1] = { n = n, task = task, err = err }
        st.paused_until = math.max(st.paused_until, now() + (err.retry_after or 1))
        return
      end
      ended(n, kid, res, err)
    end
    local job, err = client[start_m](client, task, copts)
    if not job then return ended(n, kid, nil, err) end
    st.inflight = st.inflight + 1
  end

  -- The lines the breaker held back, when it lets calls through again (or all of them, with
  -- their error, when the run stops).
  local function resend(stop)
    while ahead <= #again and (stop or st.inflight < concurrency) do
      local x = again[ahead]
      again[ahead] = nil
      ahead = ahead + 1
      if stop then ended(x.n, key_id(x.task), nil, x.err) else send(x.n, x.task) end
    end
    if ahead > #again then again, ahead = {}, 1 end
  end

  -- Reads and starts lines while there is room, a bounded number a turn.
  local function feed()
    if now() < st.paused_until then return end
    if ahead <= #again then
      if not st.stopped then resend(false) end
      if ahead <= #again then return end
    end
    local budget = LINES_A_TURN
    while budget > 0 and not st.eof and not st.stopped and st.inflight < concurrency do
      local n, text, why
      if pending_n or pending_why then
        n, text, why = pending_n, pending_text, pending_why
        pending_n, pending_text, pending_why = nil, nil, nil
      else
        n, text, why = reader.next()
      end
      if not n then
        st.eof = true
        break
      end
      st.lines = n
      budget = budget - 1
      -- a line that ended for good in an earlier run: its record, told again (a record that
      -- cannot be read back is no record: the line goes again)
      local done = j and j.outcome[n]
      local record = done and done ~= RETRY and told(j, n)
      if record and cjson.decode(record) then
        st.counts[done] = st.counts[done] + 1
        st.from_journal[done] = st.from_journal[done] + 1
        st.ended, st.told, st.tasks = st.ended + 1, st.told + 1, st.tasks + 1
        out:write(record, "\n")
      elseif why then
        st.tasks = st.tasks + 1
        ended(n, nil, nil, input_error(why))
      elseif not find(text, "^[ \t\r]*$") then
        st.tasks = st.tasks + 1
        start(n, text)
      end
    end
  end

  local progress, last_draw = opts.progress, -1
  local function draw(t)
    if progress and t - last_draw >= 0.1 then
      last_draw = t
      progress:write("\r", progress_text(st, t), "\27[K")
      progress:flush()
    end
  end

  while true do
    if opts.signals and not st.stopped then st.stopped = signals.caught() end
    if deadline_at and ahead <= #again and now() >= deadline_at then st.paused_until = 0 end
    feed()
    local waiting = ahead <= #again
    if st.inflight == 0 and (st.eof or st.stopped) and not waiting then break end
    if st.inflight == 0 and st.stopped and waiting then resend(true) end
    if st.inflight > 0 then client:poll(0.1) elseif waiting then core.sleep(0.05) end
    out:flush()
    draw(now())
  end
  out:flush()
  if progress then progress:write("\r\27[K") end
  if opts.log then
    opts.log:write(summary(st, now(), opts.dry_run))
    if reader.read_error then
      opts.log:write("itnio: the input could not be read past line ", st.lines, ": ",
                     tostring(reader.read_error), "\n")
    end
  end
  if j then
    j.file:close()
    if j.reread then j.reread:close() end
  end
  if reader.read_error then return 2, st.counts, st.stopped end
  return _M.exit_status(st.counts), st.counts, st.stopped
end

return _M
