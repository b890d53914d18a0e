-- wrk script: requests spread over ids 1..N.
-- Environment: BENCH_METHOD (GET), BENCH_PATH with {a} and {b} replaced by
-- random ids in 1..BENCH_IDS (default 100; {a} twice is one id), BENCH_BODY (none).
local method = os.getenv("BENCH_METHOD") or "GET"
local template = os.getenv("BENCH_PATH") or "/item/{a}"
local ids = tonumber(os.getenv("BENCH_IDS") or "100")
local body = os.getenv("BENCH_BODY")
local headers = {}
if body then
  headers["Content-Type"] = "application/json"
end

request = function()
  local path = template:gsub("{a}", tostring(math.random(1, ids)))
  path = path:gsub("{b}", tostring(math.random(1, ids)))
  return wrk.format(method, path, headers, body)
end
