-- One request, repeated; every response is checked, so a fast wrong answer counts as an error.
-- Set by bench/side_by_side.py: BENCH_METHOD, BENCH_BODY (form-encoded), BENCH_AUTHORIZATION and
-- BENCH_EXPECT (a substring every good body holds). The last line it prints is read by the harness.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
local expect = os.getenv("BENCH_EXPECT") or ""

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, response_body)
  if status ~= 200 or not string.find(response_body, expect, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local wrong = 0
  for _, thread in ipairs(threads) do
    wrong = wrong + thread:get("bad")
  end
  local errors = summary.errors
  local transport = errors.connect + errors.read + errors.write + errors.timeout
  io.write(string.format(
    "BENCH requests=%d wrong=%d transport_errors=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, wrong, transport, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
