-- GETs a path (KEFU_PATH, with the token already in it) and counts every answer that is
-- an error envelope ({"errcode": non-zero}) or not HTTP 200.
local path = os.getenv("KEFU_PATH")
local threads = {}
failures = 0

function setup(thread)
  table.insert(threads, thread)
end

function request()
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status ~= 200 or (string.find(body, '"errcode":', 1, true) and not string.find(body, '"errcode":0,', 1, true)) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("failures")
  end
  io.write(string.format("FAILURES %d\n", total))
end
