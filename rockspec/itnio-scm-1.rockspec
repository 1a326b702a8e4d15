-- For LuaRocks users; the project itself builds with `make` from Debian's packages.
package = "itnio"
version = "scm-1"
source = { url = "git+https://example.invalid/lua-itnio.git" }
description = {
  summary = "ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua, with a C core",
  detailed = [[
Validates a task table against every documented rule while writing the JSON body,
signs the request (MD5, OpenSSL) and sends it (libcurl, or nginx cosockets in OpenResty).
Builds on Linux (its jobs wait on epoll) and on macOS and the BSDs (on poll(2)); the sandbox
(itnio-sandbox) needs nginx with its Lua module and the rock installed for Lua 5.1 too.
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
-- `luarocks make --deps-mode=none rockspec/itnio-scm-1.rockspec` (README, "Install with LuaRocks").
external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["itnio.core"] = {
      sources = { "csrc/itnio_core.c", "csrc/schema.c", "csrc/validate.c", "csrc/json.c", "csrc/buf.c",
                  "csrc/base64.c", "csrc/sign.c", "csrc/xfer.c", "csrc/http.c", "csrc/multi.c",
                  "csrc/events.c", "csrc/clock.c", "csrc/proc.c" },
      libraries = { "crypto", "curl" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(CURL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(CURL_LIBDIR)" },
      defines = {},
    },
    ["itnio"]                 = "lua/itnio/init.lua",
    ["itnio.errors"]          = "lua/itnio/errors.lua",
    ["itnio.args"]            = "lua/itnio/args.lua",
    ["itnio.compat"]          = "lua/itnio/compat.lua",
    ["itnio.call"]            = "lua/itnio/call.lua",
    ["itnio.jobs"]            = "lua/itnio/jobs.lua",
    ["itnio.batch"]           = "lua/itnio/batch.lua",
    ["itnio.limiter"]         = "lua/itnio/limiter.lua",
    ["itnio.state"]           = "lua/itnio/state.lua",
    ["itnio.vendor"]          = "lua/itnio/vendor.lua",
    ["itnio.testing"]         = "lua/itnio/testing.lua",
    ["itnio.campaign"]        = "lua/itnio/campaign.lua",
    ["itnio.endpoints"]       = "lua/itnio/endpoints.lua",
    ["itnio.httpdate"]        = "lua/itnio/httpdate.lua",
    ["itnio.recall"]          = "lua/itnio/recall.lua",
    ["itnio.sandbox"]         = "lua/itnio/sandbox.lua",
    ["itnio.sandbox.control"] = "lua/itnio/sandbox/control.lua",
    ["itnio.sandbox.conf"]    = "lua/itnio/sandbox/conf.lua",
    ["itnio.sandbox.launcher"] = "lua/itnio/sandbox/launcher.lua",
    ["itnio.transport.curl"]  = "lua/itnio/transport/curl.lua",
    ["itnio.transport.ngx"]   = "lua/itnio/transport/ngx.lua",
    ["itnio.transport.func"]  = "lua/itnio/transport/func.lua",
  },
  install = { bin = { "bin/itnio", "bin/itnio-sandbox" } },
}
