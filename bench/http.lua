-- wrk script of bench/http.mjs: `wrk ... -s bench/http.lua URL -- hello|json [BODY]`.
-- "json" POSTs BODY (the driver passes http_handlers.mjs's REQUEST_BODY); at the end one line of
-- JSON goes to stdout with the counts, the latency percentiles (µs) and wrk's own CPU time
-- (clock ticks, from /proc/self/stat), which tells whether the generator was the limit.

function init(args)
  if args[1] == "json" then
    wrk.method = "POST"
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/json"
  end
end

local function cpu_ticks()
  local file = io.open("/proc/self/stat", "r")
  if file == nil then return -1 end
  local stat = file:read("*a")
  file:close()
  -- Fields after the command name (which may hold spaces): state is the 1st, utime the 12th.
  local fields = {}
  for field in stat:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = field end
  return tonumber(fields[12]) + tonumber(fields[13])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d},"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"cpu_ticks":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, cpu_ticks()))
end
