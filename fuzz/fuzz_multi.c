/* libFuzzer target for the multi handle (csrc/multi.c). The input is a byte program: each
 * byte an operation (some take argument bytes) on up to two itnio.Multi handles, at most 64
 * per input: add one transfer or a burst (to 127.0.0.1:1, where the connect is refused at
 * once; to one of four loopback listeners this file opens, which close, reset, or answer and
 * close; to a URL libcurl fails in perform; or with one bad argument, so add must raise),
 * perform, next_done and take, take and cancel of live, finished, stale and garbage ids,
 * cancel them all, wait (20 ms at most in all), close mid-transfer, drop the handle and
 * collect it with transfers in flight, a new handle (or options it refuses), and repeat the
 * last few operations. The driver keeps the state of every id a handle gave and aborts (a
 * finding) on a raise it did not expect, on an id next_done hands out twice or never added,
 * a take of a finished id that raises, an id issued twice, and on m:count() above the
 * transfers it thinks run (or other than them once next_done runs dry). ASan and LSan watch
 * the C side: every handle is closed or collected by the end of each input.
 *
 * The operations (byte % 19): 0-2 add (a, b), 3-4 perform, 5 next_done (take it if the
 * argument is odd), 6 next_done until nil (take each if odd), 7 take (pick), 8 cancel (pick),
 * 9 a burst of adds (n, a, b), 10 cancel every id (odd: newest first), 11 wait (k), 12 count
 * and tostring, 13 perform, wait(0), perform, 14 close, 15 drop and collect, 16 a new handle
 * (options 0-5; 3-5 are refused), 17 the other handle, 18 repeat (r: the last r%8+1 operations,
 * (r>>3)%8+1 times). add's a: bits 0-2 where (0 127.0.0.1:1, 1 the 70000-byte answer, 2 close,
 * 3 reset, 4 the 5-byte answer, 5 the same with a long URL, 6 a URL libcurl fails, 7 a bad
 * argument: b>>4 says which), bit 3 POST, bits 4-5 body, bits 6-7 timeout; b: bits 0-1 header
 * lines, bits 2-3 connect timeout. pick: bits 6-7 (0 an issued id by index, 1 the newest
 * finished, 2 the newest or its next generation, 3 garbage), bit 0 as a float. */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include "harness.h"

static const char driver[] =
  "local core = require 'itnio.core'\n"
  "local KINDS = { resolve = true, connect = true, timeout = true, tls = true, reset = true,\n"
  "  protocol = true, memory = true, too_large = true, other = true }\n"
  "local MAX_OPS, MAX_ADDS, WAIT_BUDGET = 64, 128, 0.02\n"
  "local BIG = string.rep('b', 70000)\n"
  "local BIG_ANSWER = string.rep('x', 70000)\n"
  "local MANY = {}\n"
  "for i = 1, 40 do MANY[i] = 'X-H' .. i .. ': ' .. i end\n"
  "local HEADERS = { {}, { 'X-A: b' }, { 'X-A: b', 'Expect:' }, MANY }\n"
  "local BODIES = { false, '', 'abc', BIG }\n"
  "local TIMEOUTS = { false, 0.05, 0.01, 0.001 }\n"
  "local GARBAGE = { 0, -1, 0.5, 2^53, 2^53 + 2, 1e300, -1e300, 0/0, 1/0, -1/0,\n"
  "  math.maxinteger, math.mininteger, 1, 2, 3, 17, 1 + (1 << 20), 'x', false, {} }\n"
  "local OPTS = { {}, { max_body = 3 }, { user_agent = 'fuzz', insecure = true },\n"
  "  { max_body = 0 }, { cafile = 'a\\nb' }, { max_body = 'x' } }   -- the last three raise\n"
  "\n"
  "local function fail(fmt, ...) error('FUZZ: ' .. string.format(fmt, ...), 0) end\n"
  "\n"
  "local function raised(what, ok, err, pat)\n"
  "  if ok then fail('%s did not raise', what) end\n"
  "  if type(err) ~= 'string' or (pat and not err:find(pat, 1, true)) then\n"
  "    fail('%s raised %s', what, tostring(err)) end\n"
  "end\n"
  "\n"
  "-- An outcome as take returns it: status, raw header block, body, reused (only the answering\n"
  "-- listener answers), or nil and an error.\n"
  "local function outcome(what, ans, a, b)\n"
  "  if ans == nil then\n"
  "    if type(a) ~= 'table' or not KINDS[a.reason] or math.type(a.code) ~= 'integer'\n"
  "      or type(a.message) ~= 'string' or type(a.sent) ~= 'boolean'\n"
  "      or type(a.answered) ~= 'boolean' or b ~= nil then\n"
  "      fail('%s: malformed error', what) end\n"
  "  else\n"
  "    if type(ans) ~= 'table' or math.type(ans.status) ~= 'integer' or type(ans.headers) ~= 'table'\n"
  "      or type(ans.body) ~= 'string' or type(ans.reused) ~= 'boolean' or a ~= nil or b ~= nil then\n"
  "      fail('%s: malformed answer (%s %s)', what, type(ans), tostring(type(ans) == 'table' and ans.status))\n"
  "    end\n"
  "    if ans.status ~= 200 or (ans.body ~= 'hello' and ans.body ~= BIG_ANSWER)\n"
  "      or ans.headers['x-fuzz'] ~= 'a, b' then\n"
  "      fail('%s: not our answer (%s, %d bytes)', what, tostring(ans.status), #ans.body) end\n"
  "  end\n"
  "end\n"
  "\n"
  "return function(prog, port_close, port_reset, port_answer, port_big)\n"
  "  local pos, waited = 0, 0\n"
  "  local slots, cur = {}, 1\n"
  "  local function byte() pos = pos + 1; return prog:byte(pos) or 0 end\n"
  "\n"
  "  -- What we know of one multi: ids[id] = 'run' (added, not handed out by next_done),\n"
  "  -- 'done' (handed out, not taken) or 'gone'; nrun counts 'run'; list keeps every id issued.\n"
  "  local function open(opts)\n"
  "    local ok, m = pcall(core.multi_new, opts)\n"
  "    if not ok then return nil, m end\n"
  "    if type(m) ~= 'userdata' then fail('multi_new gave %s', type(m)) end\n"
  "    return { m = m, ids = {}, list = {}, nrun = 0, closed = false }\n"
  "  end\n"
  "  local function current()\n"
  "    if not slots[cur] then slots[cur] = assert(open({})) end\n"
  "    return slots[cur]\n"
  "  end\n"
  "  local function bound(st)   -- running transfers never exceed what we think runs\n"
  "    local c = st.m:count()\n"
  "    if math.type(c) ~= 'integer' or c < 0 or c > st.nrun then\n"
  "      fail('count %s with %d tracked running', tostring(c), st.nrun) end\n"
  "    return c\n"
  "  end\n"
  "  local function set(st, id, to)\n"
  "    local from = st.ids[id]\n"
  "    if from == 'run' then st.nrun = st.nrun - 1 end\n"
  "    if to == 'run' then st.nrun = st.nrun + 1 end\n"
  "    st.ids[id] = to\n"
  "  end\n"
  "\n"
  "  -- An id to hand to take or cancel: one issued (by index, the newest finished, the newest,\n"
  "  -- as an integer or a float) or garbage (never issued, not a number, out of range).\n"
  "  local function pick(st)\n"
  "    local sel, list = byte(), st.list\n"
  "    local mode, id = sel >> 6, nil\n"
  "    if mode == 3 or #list == 0 then return GARBAGE[sel % #GARBAGE + 1] end\n"
  "    if mode == 1 then\n"
  "      for _, want in ipairs({ 'done', 'run' }) do\n"
  "        for i = #list, 1, -1 do\n"
  "          if st.ids[list[i]] == want then id = list[i]; break end\n"
  "        end\n"
  "        if id then break end\n"
  "      end\n"
  "    elseif mode == 2 then\n"
  "      id = list[#list] + ((sel & 2 == 2) and (1 << 20) or 0)   -- or its slot's next generation\n"
  "    end\n"
  "    id = id or list[sel % #list + 1]\n"
  "    if sel & 1 == 1 then id = id + 0.0 end\n"
  "    return id\n"
  "  end\n"
  "\n"
  "  local function take(st, id)\n"
  "    local state = type(id) == 'number' and st.ids[id] or nil\n"
  "    local ok, status, a, b = pcall(st.m.take, st.m, id)\n"
  "    if not ok then\n"
  "      local what = 'take(' .. tostring(id) .. ')'\n"
  "      if type(id) ~= 'number' then return raised(what, ok, status) end\n"
  "      if state == 'done' then fail('%s of a finished id raised: %s', what, tostring(status)) end\n"
  "      return raised(what, ok, status, 'not a finished transfer')\n"
  "    end\n"
  "    -- 'run' may have finished (harvested) without next_done having handed it out yet\n"
  "    if state ~= 'done' and state ~= 'run' then\n"
  "      fail('take of %s id %s succeeded', tostring(state), tostring(id)) end\n"
  "    outcome('take', status, a, b)\n"
  "    set(st, id, 'gone')\n"
  "  end\n"
  "\n"
  "  local function next_done(st)\n"
  "    local id = st.m:next_done()\n"
  "    if id == nil then return nil end\n"
  "    if math.type(id) ~= 'integer' then fail('next_done gave %s', tostring(id)) end\n"
  "    if st.ids[id] ~= 'run' then fail('next_done gave %s id %d', tostring(st.ids[id]), id) end\n"
  "    set(st, id, 'done')\n"
  "    return id\n"
  "  end\n"
  "\n"
  "  local function drain(st, take_all)\n"
  "    for _ = 1, MAX_ADDS + 1 do\n"
  "      local id = next_done(st)\n"
  "      if not id then\n"
  "        local c = st.m:count()\n"
  "        if c ~= st.nrun then\n"
  "          fail('count %d after next_done ran dry, %d tracked running', c, st.nrun) end\n"
  "        return\n"
  "      end\n"
  "      if take_all then take(st, id) end\n"
  "    end\n"
  "    fail('next_done does not run dry')\n"
  "  end\n"
  "\n"
  "  local added = 0\n"
  "  local function add(st, n)   -- n transfers with the same arguments (one by default)\n"
  "    local a, b = byte(), byte()\n"
  "    local t, url = a & 7, nil\n"
  "    if t == 0 then url = 'http://127.0.0.1:1/'\n"
  "    elseif t == 1 then url = 'http://127.0.0.1:' .. port_big .. '/big'\n"
  "    elseif t == 2 then url = 'http://127.0.0.1:' .. port_close .. '/c'\n"
  "    elseif t == 3 then url = 'http://127.0.0.1:' .. port_reset .. '/r'\n"
  "    elseif t == 4 then url = 'http://127.0.0.1:' .. port_answer .. '/a'\n"
  "    elseif t == 5 then url = 'http://127.0.0.1:' .. port_answer .. '/?q=' .. ('q'):rep(b * 8)\n"
  "    elseif t == 6 then   -- libcurl fails these in perform, without a connection\n"
  "      url = ({ 'ftp://127.0.0.1:1/', 'http://127.0.0.1:99999/', 'http://[::1/', '' })[(b >> 2) % 4 + 1]\n"
  "    else url = 'http://127.0.0.1:' .. port_answer .. '/a' end\n"
  "    local method = (a & 8 == 8) and 'POST' or 'GET'\n"
  "    local headers = HEADERS[(b & 3) + 1]\n"
  "    local body = BODIES[((a >> 4) & 3) + 1] or nil\n"
  "    local timeout = TIMEOUTS[((a >> 6) & 3) + 1] or nil\n"
  "    local connect_timeout = TIMEOUTS[((b >> 2) & 3) + 1] or nil\n"
  "    local bad = t == 7 and (b >> 4) % 12 or nil   -- one argument that add must refuse\n"
  "    if bad == 0 then method = 'PUT'\n"
  "    elseif bad == 1 then method = {}\n"
  "    elseif bad == 2 then url = 'http://127.0.0.1:1/ x'\n"
  "    elseif bad == 3 then url = 'http://127.0.0.1:1/\\0'\n"
  "    elseif bad == 4 then url = nil\n"
  "    elseif bad == 5 then headers = { 'no colon' }\n"
  "    elseif bad == 6 then headers = { 'X-A: b\\r\\nX-B: c' }\n"
  "    elseif bad == 7 then headers = { 42 }\n"
  "    elseif bad == 8 then headers = 'X-A: b'\n"
  "    elseif bad == 9 then timeout = 0\n"
  "    elseif bad == 10 then connect_timeout = 0/0\n"
  "    elseif bad == 11 then body = {} end\n"
  "    for _ = 1, n or 1 do\n"
  "      if added >= MAX_ADDS then return end\n"
  "      added = added + 1\n"
  "      local before = st.m:count()\n"
  "      local ok, id = pcall(st.m.add, st.m, method, url, headers, body, timeout, connect_timeout)\n"
  "      if bad then\n"
  "        raised('add with bad argument ' .. bad, ok, id)\n"
  "        if st.m:count() ~= before then fail('a refused add changed count') end\n"
  "      else\n"
  "        if not ok then fail('add raised: %s', tostring(id)) end\n"
  "        if math.type(id) ~= 'integer' or id < 1 then fail('add gave id %s', tostring(id)) end\n"
  "        if st.ids[id] ~= nil then fail('add gave id %d again (it was %s)', id, st.ids[id]) end\n"
  "        set(st, id, 'run')\n"
  "        st.list[#st.list + 1] = id\n"
  "        if st.m:count() ~= before + 1 then fail('add did not count') end\n"
  "      end\n"
  "    end\n"
  "  end\n"
  "\n"
  "  local function perform(st)\n"
  "    local r = st.m:perform()\n"
  "    if math.type(r) ~= 'integer' or r ~= bound(st) then fail('perform gave %s', tostring(r)) end\n"
  "  end\n"
  "\n"
  "  local function cancel(st, id)\n"
  "    local state = type(id) == 'number' and st.ids[id] or nil\n"
  "    local ok, sent = pcall(st.m.cancel, st.m, id)\n"
  "    if type(id) ~= 'number' then return raised('cancel(' .. tostring(id) .. ')', ok, sent) end\n"
  "    if not ok then fail('cancel(%s) raised: %s', tostring(id), tostring(sent)) end\n"
  "    if state == 'run' or state == 'done' then\n"
  "      if type(sent) ~= 'boolean' then fail('cancel of a live id gave %s', tostring(sent)) end\n"
  "      set(st, id, 'gone')\n"
  "    elseif sent ~= nil then\n"
  "      fail('cancel of %s id %s gave %s', tostring(state), tostring(id), tostring(sent))\n"
  "    end\n"
  "  end\n"
  "\n"
  "  local function wait(st)\n"
  "    local k, s = byte() % 8, 0\n"
  "    if k == 5 then return raised('wait(-1)', pcall(st.m.wait, st.m, -1))\n"
  "    elseif k == 6 then return raised('wait(nan)', pcall(st.m.wait, st.m, 0/0))\n"
  "    elseif k == 7 then return raised('wait(1e9)', pcall(st.m.wait, st.m, 1e9)) end\n"
  "    if k >= 1 and k <= 4 and waited + k * 0.002 <= WAIT_BUDGET then s = k * 0.002 end\n"
  "    waited = waited + s\n"
  "    st.m:wait(s)\n"
  "  end\n"
  "\n"
  "  local OPS = {\n"
  "    function(st) add(st) end, function(st) add(st) end, function(st) add(st) end,\n"
  "    perform, perform,\n"
  "    function(st)   -- next_done, and take what it gives (or leave it for later)\n"
  "      local take_it = byte() & 1 == 1\n"
  "      local id = next_done(st)\n"
  "      if id and take_it then take(st, id) end\n"
  "    end,\n"
  "    function(st) drain(st, byte() & 1 == 1) end,\n"
  "    function(st) take(st, pick(st)) end,\n"
  "    function(st) cancel(st, pick(st)) end,\n"
  "    function(st) add(st, byte() % 40 + 1) end,   -- a burst (33 make more than IDLE_KEEP idle)\n"
  "    function(st)   -- cancel every id issued, oldest or newest first\n"
  "      local list, back = st.list, byte() & 1 == 1\n"
  "      for i = 1, #list do cancel(st, list[back and #list + 1 - i or i]) end\n"
  "    end,\n"
  "    wait,\n"
  "    function(st)   -- count and tostring\n"
  "      bound(st)\n"
  "      local s = tostring(st.m)\n"
  "      if not s:find('^itnio%.Multi %(%d+ running%)$') then fail('tostring gave %s', s) end\n"
  "    end,\n"
  "    function(st)   -- pump: perform, wait(0), perform\n"
  "      perform(st); st.m:wait(0); perform(st)\n"
  "    end,\n"
  "  }\n"
  "  local LIFE = {\n"
  "    function() local st = current(); st.m:close(); st.closed = true end,   -- mid-transfer\n"
  "    function() slots[cur] = nil; collectgarbage('collect') end,   -- with transfers in flight\n"
  "    function()   -- a new multi in this slot (the old one is dropped), or a refused one\n"
  "      local k = byte() % #OPTS + 1\n"
  "      local st, err = open(OPTS[k])\n"
  "      if k >= 4 then return raised('multi_new with bad options', st ~= nil, err) end\n"
  "      if not st then fail('multi_new raised: %s', tostring(err)) end\n"
  "      slots[cur] = st\n"
  "    end,\n"
  "    function() cur = 3 - cur end,\n"
  "  }\n"
  "  local CLOSED_NAMES = { 'add', 'perform', 'next_done', 'take', 'cancel', 'wait', 'count' }\n"
  "\n"
  "  -- One operation at pos; `repeat` replays the last few operations a few times (so a short\n"
  "  -- input can run a long cycle), never from within a replay. Every step counts to MAX_OPS.\n"
  "  local starts, nops = {}, 0\n"
  "  local NALL = #OPS + #LIFE + 1\n"
  "  local function step(replaying)\n"
  "    local at, op = pos, byte()\n"
  "    local k = op % NALL + 1\n"
  "    nops = nops + 1\n"
  "    if k == NALL then\n"
  "      local r = byte()\n"
  "      if replaying then return end\n"
  "      local back, times, resume = (r & 7) + 1, (r >> 3) % 8 + 1, pos\n"
  "      for _ = 1, times do\n"
  "        for j = math.max(1, #starts - back + 1), #starts do\n"
  "          if nops >= MAX_OPS then break end\n"
  "          pos = starts[j]\n"
  "          step(true)\n"
  "        end\n"
  "      end\n"
  "      pos = resume\n"
  "      return\n"
  "    end\n"
  "    if not replaying then starts[#starts + 1] = at end\n"
  "    if k > #OPS then\n"
  "      LIFE[k - #OPS]()   -- no local here holds a multi while these collect\n"
  "    else\n"
  "      local st = current()\n"
  "      if st.closed then\n"
  "        local name = CLOSED_NAMES[op % #CLOSED_NAMES + 1]\n"
  "        raised(name .. ' on a closed multi', pcall(st.m[name], st.m, 1), 'closed')\n"
  "        if tostring(st.m) ~= 'itnio.Multi (closed)' then fail('tostring of a closed multi') end\n"
  "      else\n"
  "        OPS[k](st)\n"
  "        bound(st)\n"
  "      end\n"
  "    end\n"
  "  end\n"
  "  while nops < MAX_OPS and pos < #prog do step(false) end\n"
  "\n"
  "  -- The end: whatever is left must add up; then close or just drop every multi.\n"
  "  local close_all = #prog % 2 == 0\n"
  "  for i = 1, 2 do\n"
  "    local st = slots[i]\n"
  "    if st and not st.closed then\n"
  "      drain(st, false)\n"
  "      if close_all then st.m:close() end\n"
  "    end\n"
  "  end\n"
  "end\n";

/* The listeners: each accepts on 127.0.0.1 and, on a thread of its own, does one thing to
 * every connection: close it, reset it, or answer (5 or 70000 bytes) and close. */
enum { SERVE_CLOSE, SERVE_RESET, SERVE_ANSWER, SERVE_BIG, NSERVE };

typedef struct listener {
  int fd, mode, port;
} listener;

static listener listeners[NSERVE];

#define BIG_BODY 70000   /* past the 64 KiB a transfer keeps its buffer for */
static const char answer[] =
  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Fuzz: a\r\nX-Fuzz: b\r\nConnection: close\r\n\r\nhello";
static const char big_head[] =
  "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\nX-Fuzz: a\r\nX-Fuzz: b\r\nConnection: close\r\n\r\n";
static char big_answer[sizeof big_head - 1 + BIG_BODY];

/* Reads what the client sends until it closes or `ms` pass, so a close after it is not a reset. */
static void drain(int c, int ms) {
  char buf[4096];
  struct pollfd p = { .fd = c, .events = POLLIN };
  while (poll(&p, 1, ms) > 0 && recv(c, buf, sizeof buf, MSG_DONTWAIT) > 0) {}
}

static void *serve(void *arg) {
  listener *l = (listener *)arg;
  for (;;) {
    int c = accept(l->fd, NULL, NULL);
    if (c < 0) {
      if (errno != EINTR && errno != ECONNABORTED) usleep(1000);
      continue;
    }
    if (l->mode == SERVE_RESET) {
      struct linger lg = { .l_onoff = 1, .l_linger = 0 };
      setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (l->mode == SERVE_ANSWER || l->mode == SERVE_BIG) {
      struct timeval tv = { .tv_sec = 0, .tv_usec = 20000 };   /* a client that stopped reading */
      setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      drain(c, 1);   /* most of the request, most of the time */
      if (l->mode == SERVE_ANSWER) (void)!send(c, answer, sizeof answer - 1, MSG_NOSIGNAL);
      else (void)!send(c, big_answer, sizeof big_answer, MSG_NOSIGNAL);
      shutdown(c, SHUT_WR);
      drain(c, 3);
    }
    close(c);
  }
  return NULL;
}

static void listen_all(void) {
  memcpy(big_answer, big_head, sizeof big_head - 1);
  memset(big_answer + sizeof big_head - 1, 'x', BIG_BODY);
  for (int i = 0; i < NSERVE; i++) {
    listener *l = &listeners[i];
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    pthread_t th;
    int one = 1;
    l->mode = i;
    if ((l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) abort();
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l->fd, (struct sockaddr *)&a, sizeof a) || listen(l->fd, 1024)
        || getsockname(l->fd, (struct sockaddr *)&a, &alen)) {
      perror("fuzz_multi: listen");
      abort();
    }
    l->port = ntohs(a.sin_port);
    if (pthread_create(&th, NULL, serve, l)) abort();
    pthread_detach(th);
  }
}

static lua_State *L;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!L) {
    /* Only loopback traffic: no proxy from the environment. */
    unsetenv("http_proxy"); unsetenv("HTTP_PROXY"); unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY"); unsetenv("all_proxy"); unsetenv("ALL_PROXY");
    listen_all();
    L = fuzz_state(driver);
  }
  fuzz_driver(L);
  lua_pushlstring(L, (const char *)data, size);
  for (int i = 0; i < NSERVE; i++) lua_pushinteger(L, listeners[i].port);
  fuzz_call(L, 1 + NSERVE);
  lua_gc(L, LUA_GCCOLLECT, 0);   /* every handle of this input, and its transfers, freed */
  return 0;
}
