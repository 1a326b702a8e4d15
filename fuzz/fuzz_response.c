/* libFuzzer target for response handling: the input is one answer, a raw header block and a
 * body (split at the first blank line). The header block goes through the C parser that the
 * curl transport uses (itnio_http_push_headers), the result through the client's classify
 * (lua/itnio/init.lua), for several HTTP statuses. Either must give a result with code 0 or a
 * typed error with a one-line tostring; a raise or a malformed outcome aborts. */
#include <string.h>
#include "harness.h"

void itnio_http_push_headers(lua_State *L, const char *block, size_t len);

static const char driver[] =
  "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
  "local itnio = require 'itnio'\n"
  "local classify = assert(itnio._classify)\n"
  "return function(headers, body)\n"
  "  for name, value in pairs(headers) do\n"
  "    if type(name) ~= 'string' or name:find('[A-Z]') or type(value) ~= 'string' then\n"
  "      error('FUZZ: bad header ' .. tostring(name)) end\n"
  "  end\n"
  "  for _, status in ipairs({ 200, 204, 429, 503, 302 }) do\n"
  "    local res, err = classify({ status = status, headers = headers, body = body })\n"
  "    if res then\n"
  "      if res.code ~= 0 or type(res.message) ~= 'string' then error('FUZZ: bad result') end\n"
  "    else\n"
  "      if type(err) ~= 'table' or type(err.kind) ~= 'string' or type(err.message) ~= 'string' then\n"
  "        error('FUZZ: bad error') end\n"
  "      if tostring(err):find('\\n') then error('FUZZ: tostring(err) is not one line') end\n"
  "    end\n"
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
  itnio_http_push_headers(L, size ? s : NULL, head);
  if (split) {
    while (split < s + size && (*split == '\r' || *split == '\n')) split++;
    lua_pushlstring(L, split, (size_t)(s + size - split));
  } else {
    lua_pushliteral(L, "");
  }
  fuzz_call(L, 2);
  return 0;
}
