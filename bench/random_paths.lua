-- wrk script: requests spread over ids 1..N.
-- Environment: BENCH_METHOD (GET), BENCH_PATH with {a} and {b} replaced by
-- random ids in 1..BENCH_IDS (default 100; {a} twice is one id), BENCH_BODY (none),
-- BENCH_KEYED (unset; set: a fresh Idempotency-Key on every request).
local method = os.getenv("BENCH_METHOD") or "GET"
local template = os.getenv("BENCH_PATH") or "/item/{a}"
local ids = tonumber(os.getenv("BENCH_IDS") or "100")
local body = os.getenv("BENCH_BODY")
local headers = {}
if body then
  headers["Content-Type"] = "application/json"
end

-- Keys unique across runs on one store: the start time, a random run
-- number, then a counter.
local keyed = os.getenv("BENCH_KEYED")
local run = string.format("%d-%d", os.time(), math.random(1, 1000000000))
local sent = 0

request = function()
  local path = template:gsub("{a}", tostring(math.random(1, ids)))
  path = path:gsub("{b}", tostring(math.random(1, ids)))
  if keyed then
    sent = sent + 1
    headers["Idempotency-Key"] = run .. "-" .. sent
  end
  return wrk.format(method, path, headers, body)
end
