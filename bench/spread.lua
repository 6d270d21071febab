-- wrk script of the bench: spreads requests over many tenants and tokens.
-- usage: wrk ... -s bench/spread.lua URL -- PATHS_FILE [COUNT_STATUS] [DELAY_MEAN_MS]
--   PATHS_FILE     one request path per line (e.g. /v1/next?service=usage&token=krc_...);
--                  each wrk thread cycles through them from a random offset
--   COUNT_STATUS   1 = count responses per status (a `response` callback slows wrk, so only
--                  scenarios that expect non-200 answers turn it on)
--   DELAY_MEAN_MS  > 0 = pace each connection: wait an exponentially distributed time of this
--                  mean before each request (an approximately Poisson offered load; wrk measures
--                  latency from the write, so the wait is not counted as latency)
-- `done` prints one line `BENCHJSON {...}` with the summary and latency percentiles (µs).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

local requests_table = {}
local n = 0
local i = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if #line > 0 then
      n = n + 1
      -- built once here: request() then only indexes a table
      requests_table[n] = wrk.format("GET", line)
    end
  end
  file:close()
  assert(n > 0, "no paths in " .. args[1])
  math.randomseed(os.time() + id * 7919)
  i = math.random(n) - 1

  if args[2] == "1" then
    statuses = {}
    function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
    end
  end

  local mean = tonumber(args[3] or "0") or 0
  if mean > 0 then
    function delay()
      -- exponential wait, rounded stochastically to wrk's whole milliseconds
      local d = -math.log(1 - math.random()) * mean
      local f = math.floor(d)
      if math.random() < d - f then f = f + 1 end
      return f
    end
  end
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return requests_table[i]
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    if counts then
      for status, count in pairs(counts) do
        merged[status] = (merged[status] or 0) + count
      end
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p99_9":%d},"statuses":{%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), table.concat(parts, ",")))
end
