-- wrk script for bench/http.py: pre-built requests cycled per thread, one
-- JSON line of results from done().  Arguments after "--":
--   method  path-prefix  keys  per-thread(0|1)  body-file|-  content-type|-  authorization|-
-- Keys are "<prefix><n>" (shared by all threads) or "<prefix><thread>-<n>"
-- (per-thread, for uploads, so threads never write the same key).

local threads = 0
local requests = {}
local next_index = 1

function setup(thread)
   thread:set("thread_id", threads)
   threads = threads + 1
end

function init(args)
   local method, prefix, keys, per_thread = args[1], args[2], tonumber(args[3]), args[4] == "1"
   local body_file, content_type, authorization = args[5], args[6], args[7]
   local body = nil
   if body_file ~= "-" then
      local f = assert(io.open(body_file, "rb"))
      body = f:read("*a")
      f:close()
   end
   local headers = {}
   if content_type ~= "-" then
      headers["Content-Type"] = content_type
   end
   if authorization ~= nil and authorization ~= "-" then
      headers["Authorization"] = authorization
   end
   for n = 0, keys - 1 do
      local path
      if per_thread then
         path = prefix .. thread_id .. "-" .. n
      else
         path = prefix .. n
      end
      requests[#requests + 1] = wrk.format(method, path, headers, body)
   end
   -- Threads start at different keys so they do not walk in step.
   next_index = (thread_id * 7919) % #requests + 1
end

function request()
   local r = requests[next_index]
   next_index = next_index % #requests + 1
   return r
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
      summary.duration, summary.requests, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
