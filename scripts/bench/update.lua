-- POSTs kefu's `update` for a random one of the 100 accounts, with a nickname unique to
-- this run, and counts every answer that is not {"errcode":0,...}.
-- Environment: KEFU_TOKEN (access_token), KEFU_SUFFIX (the app's WeChat ID), KEFU_RUN (run id).
local token = os.getenv("KEFU_TOKEN")
local suffix = os.getenv("KEFU_SUFFIX") or "bench"
local run = os.getenv("KEFU_RUN") or "r"
local threads = {}
counter = 0
failures = 0
local thread_id = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  math.randomseed(os.time() + id * 7919)
end

function request()
  counter = counter + 1
  local body = string.format('{"kf_account":"k%d@%s","nickname":"%s-%d-%d"}',
    math.random(0, 99), suffix, run, thread_id, counter)
  return wrk.format("POST", "/customservice/kfaccount/update?access_token=" .. token,
    { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"errcode":0,', 1, true) then
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
