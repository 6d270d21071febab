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


-- whether a client address (32 hex digits, '' = unknown) is inside an allowlist: ranges are
-- concatenated 64-hex-digit chunks lo||hi ('' or nil = no allowlist); equal-width hex
-- compares like numbers
local function ip_allowed(ranges, ip)
  if not ranges or ranges == '' then return true end
  if ip == '' then return false end
  for i = 1, #ranges, 64 do
    if ip >= string.sub(ranges, i, i + 31) and ip <= string.sub(ranges, i + 32, i + 63) then
      return true
    end
  end
  return false
end

-- steps authenticate and allowlist, of next_key.lua and report.lua alike: whether the caller
-- is refused ('token' | 'ip') or nil. `app` is nil for a client token, else the app hash's
-- {token, allow, suspended, ...}: with an app token the tenant's must exist too (an app of an
-- unknown tenant is not a token); a suspended or deleted tenant's client hash is ''
-- (tenant_update.lua), which refuses its client and app tokens alike; a suspended app ('1')
-- refuses its own. The address must be inside the tenant's allowlist and the app's.
local function caller_refused(tenant_hash, tenant_allow, app, given_hash, ip)
  local token_hash = tenant_hash
  if app then token_hash = app[1] end
  if not tenant_hash or tenant_hash == '' or token_hash ~= given_hash
      or (app and app[3] == '1') then
    return 'token'
  end
  if not ip_allowed(tenant_allow, ip) or not ip_allowed(app and app[2], ip) then
    return 'ip'
  end
  return nil
end

-- key health (report.lua decides; rotator/domain/health.py states the rules). The service's
-- 'cool' field lists its keys cooling down as "id:until_ms" joined by ',' ('' or absent: none);
-- an entry whose time has passed stays until the key is next delivered (key.recovered) or
-- reported on. As a table: id (text) -> until_ms; nil when none.
local function cooling_table(field)
  if not field or field == '' then return nil end
  local t = {}
  for id, until_ms in string.gmatch(field, '(%d+):(%d+)') do t[id] = tonumber(until_ms) end
  return t
end

-- write a cooling table back to the service hash (sorted: the same set is the same text)
local function store_cooling(svc_key, t)
  local parts = {}
  for id, until_ms in pairs(t or {}) do
    parts[#parts + 1] = id .. ':' .. string.format('%d', until_ms)
  end
  if #parts == 0 then
    redis.call('HDEL', svc_key, 'cool')
  else
    table.sort(parts)
    redis.call('HSET', svc_key, 'cool', table.concat(parts, ','))
  end
end

-- the one rule of whether a key may be handed out now, for every policy (next_key.lua's
-- selection, lib/rotation.lua's walk): active ('1': neither a person nor a 401/403 report
-- disabled it) and not cooling down. A cooldown that has ended no longer counts: the key has
-- recovered by itself (next_key.lua records key.recovered when it next delivers it).
local function key_available(active, cooling, id, now)
  if active ~= '1' then return false end
  local until_ms = cooling and cooling[id]
  return until_ms == nil or now >= until_ms
end
