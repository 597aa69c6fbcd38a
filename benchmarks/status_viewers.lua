-- Viewers of the status pages for wrk (bench_status_pages.py sets the environment variables).
--
-- Run wrk with as many threads as connections (-t N -c N): each wrk thread then holds exactly one
-- connection and its own Lua state, so that each thread is one viewer with its own log cursor and
-- ETag, as a browser tab has. Sharing a cursor between viewers would turn into 304s the polls of a
-- viewer who never saw the lines another one fetched.
--
-- 80% of the viewers watch the running plan the way the browser does: they load the page once, at
-- a random moment of the ramp (real viewers do not all arrive in the same second), then poll its
-- live fragment every POLL_MS with the cursor and the If-None-Match of the last answer (htmx's
-- hx-get and hx-headers, swapped in by every 200). 15% watch the environment board (page, then
-- its live fragment with the ETag); 5% page through the plans list.
--
-- Latencies are measured per request with the monotonic clock (LuaJIT's ffi), from the moment
-- wrk builds the request to the moment the whole response is read; done() prints one Markdown
-- row per page, with the polls of the ramp apart from the polls of the steady state.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local timespec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC: shared by every thread of the process
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local PLAN = os.getenv("BENCH_PLAN_KEY")
local SESSION = os.getenv("BENCH_SESSION")
local RAMP_MS = tonumber(os.getenv("BENCH_RAMP_MS") or "10000")
local POLL_MS = tonumber(os.getenv("BENCH_POLL_MS") or "2000")

-- setup() runs in the main Lua state, once per thread: give each viewer a number and the clock
-- origin, and keep the threads to gather their numbers in done().
local threads = {}
local origin = now_ms()

function setup(thread)
  thread:set("viewer", #threads)
  thread:set("origin", origin)
  table.insert(threads, thread)
end

-- Per viewer (per thread).
local role, page_url, live_url, etag, started, name, first
-- "name|start_ms|latency_ms|status" per request, copied out of each thread in done(). A flat
-- list of strings: wrk 4.1 crashes copying nested tables out of a thread.
lat = {}

function init(args)
  local slot = viewer % 20
  role = slot < 16 and "plan" or slot < 19 and "board" or "list"
  math.randomseed(viewer * 7919 + 17)
  first = true
  live_url = nil
  etag = nil
  if role == "plan" then
    page_url = "/plans/" .. PLAN .. "/"
  elseif role == "board" then
    page_url = "/board/"
  end
end

function delay()
  if first then
    -- Arrival spread over the ramp; the list readers arrive too.
    return math.random(0, RAMP_MS)
  end
  return POLL_MS
end

local function header_table()
  local h = { ["Cookie"] = "sessionid=" .. SESSION }
  if etag and live_url then
    h["If-None-Match"] = etag
  end
  return h
end

function request()
  local path
  if role == nil then
    -- wrk calls request() once in its main Lua state (where init() never ran) to check it.
    return wrk.format("GET", "/healthz")
  elseif role == "list" then
    name, path = "plans list", "/plans/?page=" .. math.random(1, 400)
  elseif live_url == nil then
    name, path = role .. " page", page_url
  else
    name, path = role .. " live", live_url
  end
  first = false
  started = now_ms()
  return wrk.format("GET", path, header_table())
end

local function read_poller(body)
  local attrs = body and body:match('<div id="plan%-live"([^>]*)>')
  if not attrs then
    return
  end
  local url = attrs:match('hx%-get="([^"]+)"')
  local tag = attrs:match('"If%-None%-Match": "(.-)"}')
  if url then
    live_url = url:gsub("&amp;", "&")
  end
  if tag then
    etag = tag:gsub("\\u0022", '"')
  end
end

function response(status, headers, body)
  local elapsed = now_ms() - started
  lat[#lat + 1] = string.format("%s|%.0f|%.2f|%d", name, started - origin, elapsed, status)
  if role == "plan" and (status == 200 or status == 286) then
    read_poller(body)
  elseif role == "board" and status == 200 then
    -- The board swaps itself (outerHTML) with the ETag of its next poll in its hx-headers.
    local tag = body and body:match('"If%-None%-Match": "(.-)"}')
    if tag then
      etag = tag:gsub("\\u0022", '"')
    end
    live_url = "/board/live/"
  end
end

local function percentile(sorted, p)
  if #sorted == 0 then
    return 0
  end
  return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

local function summarize(label, values, failed, not_modified, seconds, extra_errors)
  table.sort(values)
  local n = #values
  io.write(string.format("| %s | %d | %.1f | %d | %.0f | %.0f | %.0f | %.0f | %.0f%% |\n", label, n, n / seconds,
    failed + extra_errors, percentile(values, 50), percentile(values, 95), percentile(values, 99), values[n] or 0,
    n > 0 and 100 * not_modified / n or 0))
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local steady_from = RAMP_MS + POLL_MS
  local rows, order = {}, {}
  local statuses = {}
  local function add(row, ms, status)
    local r = rows[row]
    if r == nil then
      r = { values = {}, failed = 0, not_modified = 0 }
      rows[row] = r
      table.insert(order, row)
    end
    table.insert(r.values, ms)
    if status >= 400 then
      r.failed = r.failed + 1
    elseif status == 304 then
      r.not_modified = r.not_modified + 1
    end
  end
  for _, thread in ipairs(threads) do
    for _, entry in ipairs(thread:get("lat")) do
      local series_name, at, ms, status = entry:match("^([^|]+)|([^|]+)|([^|]+)|([^|]+)$")
      at, ms, status = tonumber(at), tonumber(ms), tonumber(status)
      local phase = at < steady_from and "ramp" or "steady"
      if series_name:find(" page") then
        phase = "ramp"
      end
      add(series_name .. " (" .. phase .. ")", ms, status)
      add("all (" .. phase .. ")", ms, status)
      add("all", ms, status)
      statuses[series_name .. " " .. status] = (statuses[series_name .. " " .. status] or 0) + 1
    end
  end
  table.sort(order)
  local socket_errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("\n%d viewers, %.0f s (ramp %.0f s: page loads and polls until %.0f s; steady after)\n\n",
    #threads, seconds, RAMP_MS / 1000, steady_from / 1000))
  io.write("| page | requests | req/s | errors | p50 ms | p95 ms | p99 ms | max ms | 304 share |\n")
  io.write("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
  for _, row in ipairs(order) do
    local r = rows[row]
    local span = seconds
    if row:find("%(ramp%)") then
      span = math.min(seconds, steady_from / 1000)
    elseif row:find("%(steady%)") then
      span = math.max(1, seconds - steady_from / 1000)
    end
    summarize(row, r.values, r.failed, r.not_modified, span, row == "all" and socket_errors or 0)
  end
  local listed = {}
  for key, count in pairs(statuses) do
    table.insert(listed, key .. ": " .. count)
  end
  table.sort(listed)
  io.write("\nstatus codes: " .. table.concat(listed, ", ") .. "\n")
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n", summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
