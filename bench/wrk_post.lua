-- wrk script: POSTs one prepared, signed request again and again, and prints one line for
-- bench/run at the end. Inputs from the environment (set by bench/run):
-- BENCH_BODY_FILE (the body our core wrote), BENCH_API_KEY, BENCH_TS, BENCH_SIGN.
local function env(name) return assert(os.getenv(name), name .. " is not set") end

local f = assert(io.open(env("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json;charset=UTF-8"
wrk.headers["Api-Key"] = env("BENCH_API_KEY")
wrk.headers["Timestamp"] = env("BENCH_TS")
wrk.headers["Sign"] = env("BENCH_SIGN")

-- No response() callback: it would make wrk hand every answer to Lua and slow the ceiling
-- we measure. Answers are checked by status here and by the sandbox's accepted count.
function done(summary)
  local e = summary.errors
  io.write(("wrk_result %d %.6f %d %d\n"):format(summary.requests, summary.duration / 1e6,
    e.status, e.connect + e.read + e.write + e.timeout))
end
