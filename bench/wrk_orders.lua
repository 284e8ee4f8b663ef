-- wrk script for bench/create_order.py: POST /api/v1/orders with a distinct dossier_code per request.
--
--   wrk -t2 -c8 -d15s -s bench/wrk_orders.lua http://127.0.0.1:8000 -- BODY_FILE TAG [API_KEY [RECYCLE]]
--
-- BODY_FILE holds the JSON body with the placeholder @@DOSSIER@@ where the dossier code goes;
-- each request gets "<TAG>-<thread>-<n>". Every answer other than 201 is counted, and done()
-- prints one line "WRK_RESULT {json}" that the benchmark parses (latencies in microseconds).
--
-- RECYCLE (default 0 = never): every RECYCLE-th request of a wrk thread carries
-- "Connection: close", so wrk reconnects and the kernel hands the new connection to whichever
-- gunicorn worker accepts first. Without it the few keep-alive connections wrk opens at start
-- can all land on one worker and leave the other idle for the whole run.

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("tid", next_id)
   table.insert(threads, thread)
end

local prefix, suffix, tag
local headers = {}
local closing = {}
local recycle = 0
local counter = 0
non201 = 0
first_bad = ""

function init(args)
   local body_file = args[1]
   tag = args[2] or "bench"
   local f = assert(io.open(body_file, "rb"), "cannot open " .. tostring(body_file))
   local template = f:read("*a")
   f:close()
   local at = string.find(template, "@@DOSSIER@@", 1, true)
   assert(at, "the body has no @@DOSSIER@@ placeholder")
   prefix = string.sub(template, 1, at - 1)
   suffix = string.sub(template, at + string.len("@@DOSSIER@@"))
   headers["Content-Type"] = "application/json"
   if args[3] and args[3] ~= "" then
      headers["Authorization"] = "Bearer " .. args[3]
   end
   recycle = tonumber(args[4] or "0") or 0
   for k, v in pairs(headers) do
      closing[k] = v
   end
   closing["Connection"] = "close"
end

function request()
   counter = counter + 1
   local body = prefix .. tag .. "-" .. tid .. "-" .. counter .. suffix
   if recycle > 0 and counter % recycle == 0 then
      return wrk.format("POST", "/api/v1/orders", closing, body)
   end
   return wrk.format("POST", "/api/v1/orders", headers, body)
end

function response(status, hdrs, body)
   if status ~= 201 then
      non201 = non201 + 1
      if first_bad == "" then
         first_bad = status .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

local function json_string(s)
   s = string.gsub(s, "[%c\"\\]", function(c)
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local bad, sample = 0, ""
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non201") or 0)
      local fb = thread:get("first_bad") or ""
      if sample == "" and fb ~= "" then
         sample = fb
      end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non201": %d, "first_bad": %s, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d}}\n',
      summary.requests, summary.duration, summary.bytes, bad, json_string(sample),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99)
   ))
end
