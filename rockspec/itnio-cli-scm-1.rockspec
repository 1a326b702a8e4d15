-- The command line: `itnio` (one task, or --batch FILE: a campaign) and its engine,
-- itnio.cli.campaign, on the client (itnio). It uses lua-term for isatty, and a small C module
-- of its own for SIGINT and SIGTERM (csrc/cli/signals.c).
package = "itnio-cli"
version = "scm-1"
source = { url = "git+https://example.invalid/lua-itnio.git" }
description = {
  summary = "lua-itnio's command line: one task, or a campaign of many, from a shell",
  license = "MIT",
}
dependencies = { "lua >= 5.1, < 5.5", "lua-cjson", "lua-term", "itnio" }
build = {
  type = "builtin",
  modules = {
    ["itnio.cli.signals"] = { sources = { "csrc/cli/signals.c" } },
    ["itnio.cli.campaign"] = "lua/itnio/cli/campaign.lua",
  },
  install = { bin = { "bin/itnio" } },
}
