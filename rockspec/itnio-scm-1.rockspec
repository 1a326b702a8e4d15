-- The client, with its C core: what a program that calls the API installs. The test kit
-- (itnio-testing) and the command line (itnio-cli) are rocks of their own, beside this one.
-- For LuaRocks users; the project itself builds with `make` from Debian's packages.
package = "itnio"
version = "scm-1"
source = { url = "git+https://example.invalid/lua-itnio.git" }
description = {
  summary = "ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua, with a C core",
  detailed = [[
Validates a task table against every documented rule while writing the JSON body,
signs the request (MD5, OpenSSL) and sends it (libcurl, or nginx cosockets in OpenResty).
Builds on Linux (its jobs wait on epoll) and on macOS and the BSDs (on poll(2)).
]],
  license = "MIT",
}
dependencies = { "lua >= 5.1, < 5.5", "lua-cjson" }
-- Debian (and Ubuntu) keep curl's headers under the multiarch include directory
-- (/usr/include/x86_64-linux-gnu/curl), where LuaRocks' header check does not look, while the
-- compiler finds them there by itself. So CURL is checked by its library alone (LuaRocks looks
-- in lib/<multiarch> too) and CURL_INCDIR defaults to <prefix>/include; CURL_INCDIR=...,
-- CURL_DIR=... (and OPENSSL_*) on the command line still override where the build looks.
-- On Debian, lua-cjson comes from apt, which LuaRocks does not see: build with
-- `luarocks make --deps-mode=none rockspec/itnio-scm-1.rockspec` (README, "Installing").
external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  CURL = { library = "curl" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
}
build = {
  type = "builtin",
  modules = {
    ["itnio.core"] = {
      sources = {
                  "csrc/base64.c",
                  "csrc/buf.c",
                  "csrc/clock.c",
                  "csrc/events.c",
                  "csrc/http.c",
                  "csrc/itnio_core.c",
                  "csrc/json.c",
                  "csrc/multi.c",
                  "csrc/redis.c",
                  "csrc/schema.c",
                  "csrc/sign.c",
                  "csrc/validate.c",
                  "csrc/xfer.c",
      },
      libraries = { "crypto", "curl", "hiredis" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(CURL_INCDIR)", "$(HIREDIS_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(CURL_LIBDIR)", "$(HIREDIS_LIBDIR)" },
      defines = {},
    },
    ["itnio.errors"]             = "lua/itnio/errors.lua",
    ["itnio"]                    = "lua/itnio/init.lua",
    ["itnio.internal.batch"]     = "lua/itnio/internal/batch.lua",
    ["itnio.internal.call"]      = "lua/itnio/internal/call.lua",
    ["itnio.internal.compat"]    = "lua/itnio/internal/compat.lua",
    ["itnio.internal.cosocket"]  = "lua/itnio/internal/cosocket.lua",
    ["itnio.internal.curl"]      = "lua/itnio/internal/curl.lua",
    ["itnio.internal.custom"]    = "lua/itnio/internal/custom.lua",
    ["itnio.internal.endpoints"] = "lua/itnio/internal/endpoints.lua",
    ["itnio.internal.heap"]      = "lua/itnio/internal/heap.lua",
    ["itnio.internal.httpdate"]  = "lua/itnio/internal/httpdate.lua",
    ["itnio.internal.limiter"]   = "lua/itnio/internal/limiter.lua",
    ["itnio.internal.options"]   = "lua/itnio/internal/options.lua",
    ["itnio.internal.outcome"]   = "lua/itnio/internal/outcome.lua",
    ["itnio.internal.queue"]     = "lua/itnio/internal/queue.lua",
    ["itnio.internal.runner"]    = "lua/itnio/internal/runner.lua",
    ["itnio.internal.secrets"]   = "lua/itnio/internal/secrets.lua",
    ["itnio.internal.state"]     = "lua/itnio/internal/state.lua",
    ["itnio.internal.store"]     = "lua/itnio/internal/store.lua",
    ["itnio.recall"]             = "lua/itnio/recall.lua",
  },
}
