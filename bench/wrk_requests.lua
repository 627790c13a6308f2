-- wrk replays pre-built requests, each with its own body and headers (a
-- signature over that body), read from the file named by WRK_REQUESTS: one
-- request per line, "header: value<TAB>header: value<TAB>...<TAB>body".
-- Each thread starts at its own offset so threads do not send the same bodies
-- at the same time. done() prints the figures as one JSON line.

local requests = {}
local index = 0

function init(args)
  local path = os.getenv("WRK_REQUESTS")
  for line in io.lines(path) do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do
      table.insert(fields, field)
    end
    local body = table.remove(fields)
    local headers = { ["Content-Type"] = "application/json" }
    for _, header in ipairs(fields) do
      local name, value = string.match(header, "^([^:]+): (.*)$")
      headers[name] = value
    end
    table.insert(requests, wrk.format("POST", wrk.path, headers, body))
  end
  index = math.random(#requests)
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests_)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
