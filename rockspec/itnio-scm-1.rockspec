-- For LuaRocks users; the project itself builds with `make` from Debian's packages.
package = "itnio"
version = "scm-1"
source = { url = "git+https://example.invalid/lua-itnio.git" }
description = {
  summary = "ITNIO TECH voice API (Edit Task, Auto-Recall) from Lua, with a C core",
  detailed = [[
Validates a task table against every documented rule while writing the JSON body,
signs the request (MD5, OpenSSL) and sends it (libcurl, or nginx cosockets in OpenResty).
]],
  license = "MIT",
}
dependencies = { "lua >= 5.1, < 5.5", "lua-cjson" }
external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["itnio.core"] = {
      sources = { "csrc/itnio_core.c", "csrc/clock.c", "csrc/http.c", "csrc/multi.c", "csrc/json_out.c",
                  "csrc/schema.c", "csrc/sign.c", "csrc/validate.c", "csrc/base64.c" },
      libraries = { "crypto", "curl" },
      incdirs = { "$(OPENSSL_INCDIR)", "$(CURL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(CURL_LIBDIR)" },
      defines = {},
    },
    ["itnio"]                 = "lua/itnio/init.lua",
    ["itnio.errors"]          = "lua/itnio/errors.lua",
    ["itnio.compat"]          = "lua/itnio/compat.lua",
    ["itnio.call"]            = "lua/itnio/call.lua",
    ["itnio.jobs"]            = "lua/itnio/jobs.lua",
    ["itnio.recall"]          = "lua/itnio/recall.lua",
    ["itnio.sandbox"]         = "lua/itnio/sandbox.lua",
    ["itnio.transport.curl"]  = "lua/itnio/transport/curl.lua",
    ["itnio.transport.ngx"]   = "lua/itnio/transport/ngx.lua",
  },
  install = { bin = { "bin/itnio", "bin/itnio-sandbox" } },
}
