-- GETs a path (KEFU_PATH, with the token already in it) and counts every answer that is
-- an error envelope ({"errcode": non-zero}) or not HTTP 200. An envelope starts with
-- {"errcode": (a payload such as a list with its own key): only the start of a body is
-- read, so that checking a long list costs the load generator no more than a short
-- answer.
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
  if status ~= 200 or (string.sub(body, 1, 11) == '{"errcode":' and string.sub(body, 1, 13) ~= '{"errcode":0,') then
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
