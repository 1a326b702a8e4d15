/* libFuzzer target for the encoder: the input is read as JSON by lua-cjson (when it is a
 * JSON object) and encoded with and without passthrough; a body we produce must always be
 * JSON that cjson reads back. The raw input also goes through as every string field and
 * key, so the UTF-8 scanner and the escaper see arbitrary bytes. Aborts on any breach. */
#include "harness.h"


static const char driver[] =
  "local core, cjson = require 'itnio.core', require 'cjson'\n"
  "local fields = { 'voiceFileId', 'uploadName', 'baseFile', 'text', 'lan', 'smsContent',\n"
  "  'senderId', 'feedbackValue', 'toSeatKey', 'voiceFileName' }\n"
  "local function check(t, opts)\n"
  "  local body, errs = core.encode('recall_update', t, opts)\n"
  "  if body then\n"
  "    local ok, back = pcall(cjson.decode, body)\n"
  "    if not ok or type(back) ~= 'table' then error('FUZZ: body is not JSON: ' .. body) end\n"
  "  else\n"
  "    if type(errs) ~= 'table' or #errs == 0 then error('FUZZ: nil without errors') end\n"
  "    for _, e in ipairs(errs) do\n"
  "      if type(e.rule) ~= 'string' or type(e.field) ~= 'string' or type(e.message) ~= 'string' then\n"
  "        error('FUZZ: malformed error entry') end\n"
  "    end\n"
  "  end\n"
  "end\n"
  "return function(s)\n"
  "  local ok, t = pcall(cjson.decode, s)\n"
  "  if ok and type(t) == 'table' then check(t); check(t, { passthrough = true }) end\n"
  "  for _, f in ipairs(fields) do\n"
  "    local node = { source = 1, voiceFileId = 'v', hangUpSms = 0, toSeat = 0 }\n"
  "    node[f] = s\n"
  "    check({ keyId = 1, recallInterval = 1, recallNum = 1, recallType = 0, nodeList = { node } })\n"
  "  end\n"
  "  check({ keyId = 1, recallInterval = 1, recallNum = 1, recallType = 0, [s] = s, recallIntent = { s } },\n"
  "        { passthrough = true })\n"
  "end\n";

static lua_State *L;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!L) L = fuzz_state(driver);
  fuzz_driver(L);
  lua_pushlstring(L, (const char *)data, size);
  fuzz_call(L, 1);
  return 0;
}
