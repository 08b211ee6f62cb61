-- wrk script: POST /buy for a random user out of 1,000 with a random 2-decimal price
-- (0.01 to 999.99). BENCH_USER_PREFIX (default "u") keeps rounds' users apart.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local prefix = os.getenv("BENCH_USER_PREFIX") or "u"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- BENCH_TOKENS: a file with each user's bearer token, one line per user in order.
local tokens = {}
local tokens_file = os.getenv("BENCH_TOKENS")
if tokens_file then
  for line in io.lines(tokens_file) do table.insert(tokens, line) end
end

request = function()
  local u = math.random(1, 1000)
  local body = string.format('{"username":"user%d","userid":"%s%d","price":%d.%02d}',
    u, prefix, u, math.random(0, 999), math.random(1, 99))
  if tokens[u] then wrk.headers["Authorization"] = "Bearer " .. tokens[u] end
  return wrk.format(nil, "/buy", nil, body)
end
