-- wrk script for make bench. Environment:
--   BENCH_MODE  plain  | the same POST every time, no key (static request)
--               first  | a new Idempotency-Key per request: BENCH_RUN-<thread>-<counter>
--               replay | BENCH_KEYS fixed keys BENCH_RUN-0 .. -(n-1), round robin
--   BENCH_PATH  request path; BENCH_BODY  request body; BENCH_RUN  key prefix
-- done() prints one line "BENCHJSON {...}" that bench.py reads.
local mode = os.getenv("BENCH_MODE") or "plain"
local path = os.getenv("BENCH_PATH") or "/v1/orders"
local body = os.getenv("BENCH_BODY") or '{"sku":"book","qty":1}'
local run  = os.getenv("BENCH_RUN") or "run"
local nkeys = tonumber(os.getenv("BENCH_KEYS") or "100")

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local threads = {}
function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local prefix, counter, reqs, idx

function init(args)
   prefix = run .. "-" .. tostring(tid or 0) .. "-"
   counter = 0
   if mode == "replay" then
      reqs = {}
      for i = 0, nkeys - 1 do
         reqs[#reqs + 1] = wrk.format("POST", path,
            { ["Content-Type"] = "application/json",
              ["Idempotency-Key"] = run .. "-" .. i }, body)
      end
      -- start each thread at its own place in the ring
      idx = ((tid or 0) * 37) % nkeys
   end
end

if mode == "first" then
   -- the request is built once around a placeholder key: wrk.format per
   -- request cost the load core (shared with the upstream and Redis) about
   -- as much CPU as the upstream's own answer
   local head, tail
   function request()
      if not head then
         local tpl = wrk.format("POST", path,
            { ["Content-Type"] = "application/json",
              ["Idempotency-Key"] = "\0KEY\0" }, body)
         local at = tpl:find("\0KEY\0", 1, true)
         head, tail = tpl:sub(1, at - 1) .. prefix, tpl:sub(at + 5)
      end
      counter = counter + 1
      return head .. counter .. tail
   end
elseif mode == "replay" then
   function request()
      idx = idx % nkeys + 1
      return reqs[idx]
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
