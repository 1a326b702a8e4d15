-- POST /batch?n=N of bench/nginx.lua: a batch of N copies of bench/task.lua's task on ngx.thread
-- light threads (concurrency 32), through one client per worker; answers how many succeeded.
local itnio = require "itnio"
local new_task = require "task"

local _M = {}
local client

function _M.run()
  if not client then
    client = assert(itnio.new{ api_key = os.getenv("ITNIO_API_KEY"),
                               api_secret = os.getenv("ITNIO_API_SECRET"),
                               base_url = os.getenv("ITNIO_BASE_URL"), max_retries = 0 })
  end
  ngx.req.discard_body()
  local n = tonumber(ngx.var.arg_n) or 100
  local task, tasks = new_task(), {}
  for i = 1, n do tasks[i] = task end
  local ok = 0
  for _, r in ipairs(client:batch_recall_update(tasks, { concurrency = 32 })) do
    if r.res then ok = ok + 1 end
  end
  ngx.status = ok == n and 200 or 502
  ngx.say(ok)
end

return _M
