/* libFuzzer target for the encoder: the input is read as JSON by lua-cjson (when it is a
 * JSON object) and encoded with and without passthrough; a body we produce must always be
 * JSON that cjson reads back. The raw input also goes through as every string field and
 * key, so the UTF-8 scanner and the escaper see arbitrary bytes. Aborts on any breach. */
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_itnio_core(lua_State *L);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char driver[] =
  "local core, cjson = require 'itnio.core', require 'cjson'\n"
  "local fields = { 'voiceFileId', 'uploadName', 'baseFile', 'text', 'lan', 'smsContent',\n"
  "  'senderId', 'feedbackValue', 'toSeatKey', 'voiceFileName' }\n"
  "local function check(t, opts)\n"
  "  local body, errs = core.encode_recall_update(t, opts)\n"
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

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_itnio_core);
  lua_setfield(L, -2, "itnio.core");
  lua_pop(L, 2);
  if (luaL_loadstring(L, driver) || lua_pcall(L, 0, 1, 0)) {
    fprintf(stderr, "fuzz setup: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.driver");
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!L) setup();
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.driver");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0)) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
