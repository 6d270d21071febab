-- prelude: the steps several scripts share, prepended to every script when it is loaded
-- (rotator/store/scripts/__init__.py; the SHA is of the combined source), so each is written
-- once. Field and key names are declared in rotator/store/keys.py (a test checks the
-- literals every script uses against it). Units: times in ms since the epoch, days as whole
-- UTC days since 1970-01-01.

-- now in ms: the caller's injected time (tests; '' in production) or Redis TIME, so every
-- API and worker host decides on one clock
local function clock_ms(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a comma-separated id list ("3,7,9"; '' or nil = none) as a table of strings
local function split_ids(list)
  local ids = {}
  for id in string.gmatch(list or '', '[^,]+') do ids[#ids + 1] = id end
  return ids
end

-- record an event on a tenant's stream when the tenant subscribes to it (`events`: its
-- ",type,type," list); `data` is a table (encoded here with cjson, so any string in it is
-- escaped) or JSON already encoded by the caller. Returns the stream entry id, nil when nothing
-- was recorded.
local function emit(stream, maxlen, events, event_type, data)
  if not (events and string.find(events, ',' .. event_type .. ',', 1, true)) then return nil end
  if type(data) == 'table' then data = cjson.encode(data) end
  return redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', event_type,
    'data', data)
end

-- an event recorded at most once a day: `flag` (a field of the day's usage hash, which
-- expires with the day) is set only when the event is recorded, so a tenant that subscribes
-- later in the day still hears of it. Returns the entry id, nil when nothing was recorded.
local function emit_daily(usage_key, ttl_s, stream, maxlen, events, event_type, data, flag)
  if events and string.find(events, ',' .. event_type .. ',', 1, true)
      and redis.call('HSETNX', usage_key, flag, 1) == 1 then
    redis.call('EXPIRE', usage_key, ttl_s)
    return emit(stream, maxlen, events, event_type, data)
  end
end

-- the tenant fields a delivery reads, copied into every service hash as '@<field>' so a
-- delivery reads one hash fewer (rotator/store/keys.py COPIED_TENANT_FIELDS)
local function copy_tenant_fields(tenant_key, svc_keys)
  local t = redis.call('HMGET', tenant_key, 'client', 'demo', 'allow', 'events')
  for _, svc_key in ipairs(svc_keys) do
    redis.call('HSET', svc_key, '@client', t[1] or '', '@demo', t[2] or '',
      '@allow', t[3] or '', '@events', t[4] or '')
  end
end

