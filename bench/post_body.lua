-- wrk script: POST the bytes of $BODY_FILE with Content-Type $CONTENT_TYPE to the URL, and print
-- one machine-readable RESULT line at the end (non200: wrk's count of non-2xx/3xx answers).
-- $EXTRA_HEADER adds one header.
local path = os.getenv("BODY_FILE")
local f = assert(io.open(path, "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
-- one more header if given, "Name: value" (the Open Inference Protocol's Inference-Header-Content-Length)
local extra = os.getenv("EXTRA_HEADER")
if extra and extra ~= "" then
  local name, value = string.match(extra, "^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end

function write_result(summary, latency)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non200=%d sock_err=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end

function done(summary, latency, requests)
  write_result(summary, latency)
end
