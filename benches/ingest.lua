-- wrk script: POST a posyandu.balita record with a fresh local id per request, so every
-- request is a new record committed durably (no idempotent short-cut).
-- Environment: GERBANG_KEY (facility API key), RECORD (path of the example record).
local counter = 0
local threads = 0
local body_template

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local f = assert(io.open(os.getenv("RECORD"), "r"))
  body_template = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("GERBANG_KEY")
end

function request()
  counter = counter + 1
  local id = string.format("BENCH-%d-%d-%d", tid, os.time(), counter)
  local body = body_template:gsub('"id_kunjungan": "[^"]*"', '"id_kunjungan": "' .. id .. '"', 1)
  return wrk.format(nil, nil, nil, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests %d duration_s %.2f non2xx %d\n",
    summary.requests, summary.duration / 1e6, (summary.errors.status or 0)))
end
