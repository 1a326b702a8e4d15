/* libFuzzer target for response handling: the input is one answer, a raw header block and a
 * body (split at the first blank line). The header block goes through the C parser that the
 * curl transport uses (itnio_push_headers), the result through the client's classify
 * (lua/itnio/internal/outcome.lua) for several HTTP statuses, and then through whole calls of
 * a client whose transport answers with it: the skew fix from its Date, the Retry-After
 * arithmetic, redaction. Each must give a result with code 0 or a typed error with a one-line
 * tostring; neither classify's outcome nor what a call returns may hold the secret, and the
 * client's next call must work; a raise or anything else aborts. */
#include <string.h>
#include "harness.h"

void itnio_push_headers(lua_State *L, const char *block, size_t len);

static const char driver[] =
  "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
  "local itnio = require 'itnio'\n"
  "local outcome = require 'itnio.internal.outcome'\n"
  "local SECRET = 'fuzz-secret-Q9'\n"
  "local who = assert(itnio.new{ api_key = 'fuzz-key', api_secret = SECRET })\n"
  "local function classify(ans) return outcome.classify({ client = who, attempt = 1 }, ans) end\n"
  "local TASK = { keyId = 299, recallType = 0, recallInterval = 30, recallNum = 1, nodeList = {} }\n"
  "local GOOD = { status = 200, headers = {}, body = '{\"code\":0}' }\n"
  "local function check_err(err, what, redacted)\n"
  "  if type(err) ~= 'table' or type(err.kind) ~= 'string' or type(err.message) ~= 'string' then\n"
  "    error('FUZZ: bad error from ' .. what) end\n"
  "  if tostring(err):find('\\n') then error('FUZZ: tostring(err) is not one line') end\n"
  "  if redacted and (tostring(err):find(SECRET, 1, true) or err.message:find(SECRET, 1, true)) then\n"
  "    error('FUZZ: the secret shows in an error') end\n"
  "end\n"
  "return function(headers, body)\n"
  "  for name, value in pairs(headers) do\n"
  "    if type(name) ~= 'string' or name:find('[A-Z]') or type(value) ~= 'string' then\n"
  "      error('FUZZ: bad header ' .. tostring(name)) end\n"
  "  end\n"
  "  -- The fast path (an answer recognised in C as a plain success) agrees with classify.\n"
  "  local plain, pmsg = require('itnio.core').plain_success(200, body)\n"
  "  if plain then\n"
  "    local r = classify({ status = 200, headers = headers, body = body })\n"
  "    local want = (pmsg or 'success'):gsub(SECRET:gsub('%p', '%%%0'), '<redacted>')\n"
  "    if not r or r.code ~= 0 or r.data ~= nil or r.message ~= want then\n"
  "      error('FUZZ: the fast path and classify disagree') end\n"
  "  end\n"
  "  for _, status in ipairs({ 200, 204, 429, 503, 302 }) do\n"
  "    local res, err = classify({ status = status, headers = headers, body = body })\n"
  "    if res then\n"
  "      if res.code ~= 0 or type(res.message) ~= 'string' then error('FUZZ: bad result') end\n"
  "    else\n"
  "      check_err(err, 'classify', true)\n"
  "    end\n"
  "  end\n"
  "  -- The whole decision on this answer (skew fix from its Date, Retry-After arithmetic,\n"
  "  -- redaction), through a client whose transport gives it twice, then a good one.\n"
  "  for _, status in ipairs({ 200, 503 }) do\n"
  "    local n = 0\n"
  "    local c = assert(itnio.new{ api_key = 'fuzz-key', api_secret = SECRET, max_retries = 1,\n"
  "      backoff_base = 0, backoff_cap = 0, max_retry_after = 0, deadline = 1,\n"
  "      transport = function()\n"
  "        n = n + 1\n"
  "        if n > 2 then return GOOD end\n"
  "        return { status = status, headers = headers, body = body }\n"
  "      end })\n"
  "    local ok, res, err = pcall(c.recall_update, c, TASK)\n"
  "    if not ok then error('FUZZ: the call raised: ' .. tostring(res)) end\n"
  "    if res then\n"
  "      if res.code ~= 0 then error('FUZZ: bad result') end\n"
  "      if tostring(res.message):find(SECRET, 1, true) then error('FUZZ: the secret shows') end\n"
  "    else\n"
  "      check_err(err, 'the call', true)\n"
  "    end\n"
  "    if not c:prepare_recall_update(TASK).headers.Timestamp:match('^%d+$') then\n"
  "      error('FUZZ: a Timestamp that is not digits') end\n"
  "    n = 2\n"
  "    local ok2, res2 = pcall(c.recall_update, c, TASK)\n"
  "    if not (ok2 and res2) then error('FUZZ: the next call failed: ' .. tostring(res2)) end\n"
  "  end\n"
  "end\n";

static lua_State *L;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  const char *s = (const char *)data, *split = NULL;
  size_t head = size;
  if (!L) L = fuzz_state(driver);
  for (size_t i = 0; i + 1 < size; i++)
    if (s[i] == '\n' && (s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < size && s[i + 2] == '\n'))) {
      split = s + i + 1;
      head = i + 1;
      break;
    }
  fuzz_driver(L);
  itnio_push_headers(L, size ? s : NULL, head);
  if (split) {
    while (split < s + size && (*split == '\r' || *split == '\n')) split++;
    lua_pushlstring(L, split, (size_t)(s + size - split));
  } else {
    lua_pushliteral(L, "");
  }
  fuzz_call(L, 2);
  return 0;
}
