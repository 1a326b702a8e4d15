-- The test kit: the vendor double (itnio.testing), the sandbox in nginx (itnio.testing.sandbox,
-- itnio-sandbox). A user adds it for their tests, beside the client (itnio). The sandbox runs
-- in nginx's LuaJIT and loads the client's core built for Lua 5.1: install the itnio rock for
-- Lua 5.1 too (README, "Installing").
package = "itnio-testing"
version = "scm-1"
source = { url = "git+https://example.invalid/lua-itnio.git" }
description = {
  summary = "lua-itnio's test kit: a vendor double in Lua, and the vendor's sandbox in nginx",
  license = "MIT",
}
dependencies = { "lua >= 5.1, < 5.5", "lua-cjson", "itnio" }
build = {
  type = "builtin",
  modules = {
    ["itnio.testing"]                  = "lua/itnio/testing/init.lua",
    ["itnio.testing.internal.conf"]    = "lua/itnio/testing/internal/conf.lua",
    ["itnio.testing.internal.control"] = "lua/itnio/testing/internal/control.lua",
    ["itnio.testing.internal.handler"] = "lua/itnio/testing/internal/handler.lua",
    ["itnio.testing.internal.reply"]   = "lua/itnio/testing/internal/reply.lua",
    ["itnio.testing.internal.vendor"]  = "lua/itnio/testing/internal/vendor.lua",
    ["itnio.testing.sandbox"]          = "lua/itnio/testing/sandbox.lua",
  },
  install = { bin = { "bin/itnio-sandbox" } },
}
