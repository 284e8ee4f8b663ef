-- wrk script for bench/ipn_load.py: send every line of a target file exactly once, record every answer.
--
--   wrk -tT -cC -d3600s -s bench/wrk_ipn.lua http://127.0.0.1:8000 -- TARGETS_FILE TAG T [RECYCLE]
--
-- TARGETS_FILE holds one request target ("/path?query") per line. Thread t of T sends the lines
-- t, t+T, t+2T, ... (1-based), each exactly once, as GET with "X-Request-Id: <TAG>-<line>"; the
-- gateway echoes that header, so response() knows which line an answer belongs to even with several
-- connections per thread. It records "<status>:<code>" per line, where code is the VNPAY RspCode of
-- the JSON body ({"RspCode":"00",...}) or "-" when the body has none.
--
-- A connection only sends when a line is left for it: delay() reserves the next line (0 ms delay) or
-- parks the connection for an hour once the thread's lines are all taken. When a thread has an answer
-- for each of its lines it prints "WRK_THREAD_DONE <t>" and stops; wrk itself only ends at -d or on
-- SIGINT, which the benchmark sends once every thread is done. done() then prints
-- "WRK_RESULT {json}" (latencies in microseconds, from wrk's own per-request timing) and
-- "WRK_ANSWERS <line>=<status>:<code>,..." for the benchmark to check.
--
-- RECYCLE (default 0 = never): every RECYCLE-th request of a thread carries "Connection: close", so
-- that wrk reconnects and connections spread over both gunicorn workers (see bench/README.md).

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } ipn_bench_timespec;
int clock_gettime(int clk_id, ipn_bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("ipn_bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

local PARK_MS = 3600 * 1000

-- main state: the threads, for done()
local threads = {}
local next_tid = 0

function setup(thread)
   next_tid = next_tid + 1
   thread:set("tid", next_tid)
   table.insert(threads, thread)
end

-- thread state
local targets = {}   -- this thread's targets, in order
local lines = {}     -- and their line numbers in the file
local pos = 1        -- next target to send
local reserved = 0   -- delay() calls that promised a target to a request() still to come
local primed = false
local tag = "ipn"
local recycle = 0
local sent = 0
local plain = {}
local closing = {}
-- read back by done() through thread:get
answers = {}
answered = 0
expected = 0
repeats = 0
unmatched = 0
fillers = 0
first_us = 0
last_us = 0
first_bad = ""

function init(args)
   local path = assert(args[1], "usage: -- TARGETS_FILE TAG THREADS [RECYCLE]")
   tag = args[2] or tag
   local nthreads = tonumber(args[3] or "1") or 1
   recycle = tonumber(args[4] or "0") or 0
   local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
   local n = 0
   for line in f:lines() do
      if line ~= "" then
         n = n + 1
         if (n - 1) % nthreads == tid - 1 then
            table.insert(targets, line)
            table.insert(lines, n)
         end
      end
   end
   f:close()
   expected = #targets
   closing["Connection"] = "close"
   if expected == 0 then
      io.write("WRK_THREAD_DONE " .. tid .. "\n")
      io.flush()
   end
end

function delay()
   if pos + reserved <= #targets then
      reserved = reserved + 1
      return 0
   end
   return PARK_MS
end

local function format(line_no, target, headers)
   headers["X-Request-Id"] = string.format("%s-%07d", tag, line_no)
   return wrk.format("GET", target, headers)
end

function request()
   if not primed then
      primed = true
      if tid == 1 then
         -- wrk calls request() once on the first thread before it starts, only to check the result:
         -- show it the first target without using it up.
         return format(lines[1] or 0, targets[1] or "/", {})
      end
   end
   if reserved > 0 then
      reserved = reserved - 1
   end
   if pos > #targets then
      -- Only after a connection error (wrk resends without asking delay()); never expected.
      fillers = fillers + 1
      return format(0, "/healthz", {})
   end
   local i = pos
   pos = pos + 1
   sent = sent + 1
   if first_us == 0 then
      first_us = now_us()
   end
   if recycle > 0 and sent % recycle == 0 then
      return format(lines[i], targets[i], closing)
   end
   return format(lines[i], targets[i], plain)
end

function response(status, headers, body)
   local rid = headers["X-Request-Id"] or headers["x-request-id"] or ""
   local line_no = tonumber(string.match(rid, "-(%d+)$") or "")
   if line_no == nil or line_no == 0 or string.sub(rid, 1, #tag + 1) ~= tag .. "-" then
      if line_no ~= 0 then
         unmatched = unmatched + 1
      end
      return
   end
   local code = string.match(body or "", '"RspCode"%s*:%s*"([^"]*)"') or "-"
   if answers[line_no] ~= nil then
      repeats = repeats + 1
      return
   end
   answers[line_no] = status .. ":" .. code
   if status ~= 200 and first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
   end
   answered = answered + 1
   last_us = now_us()
   if answered % 100 == 0 then
      io.write("WRK_PROGRESS " .. tid .. " " .. answered .. "\n")
      io.flush()
   end
   if answered == expected then
      io.write("WRK_THREAD_DONE " .. tid .. "\n")
      io.flush()
      wrk.thread:stop()
   end
end

local function json_string(s)
   s = string.gsub(s, "[%c\"\\]", function(c)
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local first, last = 0, 0
   local got, want, rep, unm, fill, sample = 0, 0, 0, 0, 0, ""
   local parts = {}
   for _, thread in ipairs(threads) do
      got = got + (thread:get("answered") or 0)
      want = want + (thread:get("expected") or 0)
      rep = rep + (thread:get("repeats") or 0)
      unm = unm + (thread:get("unmatched") or 0)
      fill = fill + (thread:get("fillers") or 0)
      local f, l = thread:get("first_us") or 0, thread:get("last_us") or 0
      if f > 0 and (first == 0 or f < first) then
         first = f
      end
      if l > last then
         last = l
      end
      local fb = thread:get("first_bad") or ""
      if sample == "" and fb ~= "" then
         sample = fb
      end
      for line_no, answer in pairs(thread:get("answers") or {}) do
         table.insert(parts, string.format("%d=%s", line_no, answer))
      end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"answered": %d, "expected": %d, "repeats": %d, "unmatched": %d, "fillers": %d, '
         .. '"window_us": %d, "requests": %d, "duration_us": %d, "first_bad": %s, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d}}\n',
      got, want, rep, unm, fill, last - first, summary.requests, summary.duration, json_string(sample),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99)
   ))
   io.write("WRK_ANSWERS " .. table.concat(parts, ",") .. "\n")
end
