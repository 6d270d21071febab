-- sweep_service: mark the newly expired keys of one time-policy service and notify, atomically.
-- Selection never depends on this (next_key.lua checks expiry itself); the sweep makes expiry
-- visible (x:N) and records the events a tenant would otherwise see only on its next request.
-- Units: times in ms since the epoch.
-- KEYS[1] tenant hash       {t:T}:tenant      (events: ",type,type," subscribed)
-- KEYS[2] service hash      {t:T}:svc:<slug>  (policy, ttl_ms, ids, noact, a:N, t:N, x:N, l:N)
-- KEYS[3] event stream      {t:T}:events
-- ARGV[1] now_ms ('' = Redis TIME: one clock for every worker host)
-- ARGV[2] event stream cap (approximate, XADD MAXLEN ~)
-- ARGV[3] service slug (the events' "service")
-- Key N is expired iff t:N (ms it entered rotation) is set and now >= t:N + ttl_ms; a key
-- with t:N unset has not entered rotation yet and counts as available.
-- Returns {status, newly_expired, noact_set 0|1 (service.no_active_keys recorded if subscribed)};
--   'ok'        swept
--   'missing'   no such service (deleted; its kr:time_services member is stale)
--   'not_time'  the service's policy is no longer 'time'

local now = clock_ms(ARGV[1])

local svc = redis.call('HMGET', KEYS[2], 'policy', 'ttl_ms', 'ids')
if not svc[1] then
  return {'missing', 0, 0}
end
if svc[1] ~= 'time' then
  return {'not_time', 0, 0}
end
local slug = ARGV[3]
-- no ttl: keys never expire (the same reading as next_key.lua)
local ttl_ms = tonumber(svc[2]) or math.huge

local events = redis.call('HGET', KEYS[1], 'events')
local function record(event_type, data)
  emit(KEYS[3], ARGV[2], events, event_type, data)
end

local ids = split_ids(svc[3])
local n = #ids
if n == 0 then
  -- a service that never had keys is not "left without" one: creating a time service and
  -- adding its keys a minute later must not raise an alarm (a request still would)
  return {'ok', 0, 0}
end

local fields = {}
for i = 1, n do
  fields[#fields + 1] = 'a:' .. ids[i]
  fields[#fields + 1] = 't:' .. ids[i]
  fields[#fields + 1] = 'x:' .. ids[i]
  fields[#fields + 1] = 'l:' .. ids[i]
end
local state = redis.call('HMGET', KEYS[2], unpack(fields))

local newly_expired = 0
local available = false
for i = 1, n do
  local active = state[4 * i - 3] == '1'
  local entered = tonumber(state[4 * i - 2])
  if active then
    if entered ~= nil and now >= entered + ttl_ms then
      -- x:N makes key.expired once per key: later sweeps see it and stay quiet
      if not state[4 * i - 1] then
        redis.call('HSET', KEYS[2], 'x:' .. ids[i], now)
        newly_expired = newly_expired + 1
        record('key.expired', {service = slug, key_id = tonumber(ids[i]),
          label = state[4 * i] or ''})
      end
    else
      available = true
    end
  end
end

local noact_set = 0
-- noact is shared with next_key.lua (HSETNX there too) and cleared by the management API when
-- a key is added or enabled, so one episode without keys is reported once, by whoever sees it
-- first
if not available and redis.call('HSETNX', KEYS[2], 'noact', 1) == 1 then
  record('service.no_active_keys', {service = slug})
  noact_set = 1
end
return {'ok', newly_expired, noact_set}
