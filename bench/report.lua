-- Shared by post.lua and get.lua: counts non-2xx answers per thread and prints one
-- parseable line at the end (wrk's own --latency output has no p95):
--   BENCH_RESULT {"requests": ..., "rps": ..., "p50_ms": ..., "p95_ms": ..., "p99_ms": ..., "non2xx": ...}
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  if bench_init then bench_init(args) end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_s": %.3f, "rps": %.1f, "non2xx": %d, ' ..
    '"status_errors": %d, "socket_errors": %d, "timeouts": %d, "mean_ms": %.3f, "p50_ms": %.3f, ' ..
    '"p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, secs, summary.requests / secs, bad, e.status,
    e.connect + e.read + e.write + e.timeout, e.timeout, latency.mean / 1000,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
