-- next_key: authenticate, check, select, count and record one delivery, atomically.
-- Units: times in ms since the epoch, days as whole UTC days since 1970-01-01.
-- KEYS[1] tenant hash       {t:T}:tenant
-- KEYS[2] app hash          {t:T}:app:<id>   (when no app token: any name in the slot, unused)
-- KEYS[3] service hash      {t:T}:svc:<slug>
-- KEYS[4] usage hash        {t:T}:use:<day>
-- KEYS[5] demo throttle     {t:T}:gcra:<iphex>
-- KEYS[6] event stream      {t:T}:events
-- KEYS[7] request record    {t:T}:rid:<request id>   (no request id: any name in the slot, unused)
-- ARGV[1] sha256 hex of the token's secret part
-- ARGV[2] app id ('' = tenant client token)
-- ARGV[3] service slug
-- ARGV[4] client address, 32 hex digits in the IPv6 space ('' = unknown)
-- ARGV[5] now_ms ('' = Redis TIME: one clock for every API host)
-- ARGV[6] day number KEYS[4] was named for (the caller's clock)
-- ARGV[7] demo emission interval ms (60000 / requests per minute)
-- ARGV[8] demo burst (requests)
-- ARGV[9] usage hash ttl s (history kept)
-- ARGV[10] event stream cap (approximate)
-- ARGV[11] the service's key ids as the caller last saw them ('' = unknown): a hint that lets
--          one HMGET read the service's settings and its keys' state together; when it is
--          stale the keys are read again, so the hint never changes a decision
-- ARGV[12] request id set by a trusted proxy ('' = none): a retry of the same request (nginx
--          resending a GET whose API process died after this script ran) gets the key the
--          first attempt picked, counted once
-- ARGV[13] request record ttl ms
-- Returns, in check order (a request rejected before selection is not counted):
--   {'day', day}            KEYS[4] is not today's hash (caller's clock off by a midnight): retry
--   {'token'}               unknown tenant, app or secret
--   {'ip'}                  client outside the tenant's or the app's allowlist
--   {'throttle', wait_ms}   demo tenant over its per-IP rate
--   {'service'}             no such service
--   {'limit'}               service or app daily limit reached, or every key at its own limit
--   {'nokeys'}              no active (and, for time policy, unexpired) key
--   {'ok', key_id, label, ciphertext, usage_today, policy, service max ('' = none), demo 0|1,
--    the service's key ids when the hint was stale, else ''}

local now
if ARGV[5] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[5])
end
local day = math.floor(now / 86400000)
if day ~= tonumber(ARGV[6]) then
  return {'day', day}
end

local tenant = redis.call('HMGET', KEYS[1], 'client', 'demo', 'allow', 'events')
local app_id = ARGV[2]
local token_hash = tenant[1]
local app = nil
if app_id ~= '' then
  app = redis.call('HMGET', KEYS[2], 'token', 'allow', 'max')
  token_hash = app[1]
end
-- tenant[1] is checked too: an app of a deleted tenant is not a token
if not tenant[1] or token_hash ~= ARGV[1] then
  return {'token'}
end

-- allowlists are concatenated 64-hex-digit chunks lo||hi; equal-width hex compares like numbers
local ip = ARGV[4]
local function allowed(ranges)
  if not ranges or ranges == '' then return true end
  if ip == '' then return false end
  for i = 1, #ranges, 64 do
    if ip >= string.sub(ranges, i, i + 31) and ip <= string.sub(ranges, i + 32, i + 63) then
      return true
    end
  end
  return false
end
if not allowed(tenant[3]) or (app and not allowed(app[2])) then
  return {'ip'}
end

local demo = tenant[2] == '1'
if demo then
  -- GCRA: each request moves the theoretical arrival time (tat) one interval on;
  -- a request is early (rejected) when tat would run more than `burst` intervals ahead.
  local interval = tonumber(ARGV[7])
  local tat = tonumber(redis.call('GET', KEYS[5]) or 0)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * tonumber(ARGV[8])
  if now < allow_at then
    return {'throttle', allow_at - now}
  end
  redis.call('SET', KEYS[5], new_tat, 'PX', new_tat - now)
end

-- the keys' state in the same HMGET as the service's settings, named by the caller's hint
-- only what every policy needs (active, own limit): each field read from a cold hash costs
-- cache misses, so validity times are read by the time policy alone, and the label and
-- sealed secret of the picked key only
local KEY_FIELDS = 2
local function key_fields(ids_csv, into)
  local ids = {}
  for id in string.gmatch(ids_csv, '[^,]+') do
    ids[#ids + 1] = id
    into[#into + 1] = 'a:' .. id
    into[#into + 1] = 'm:' .. id
  end
  return ids
end
local function picked(key_id)
  return redis.call('HMGET', KEYS[3], 'l:' .. key_id, 'c:' .. key_id)
end
local hint = ARGV[11]
local svc_fields = {'policy', 'max', 'ttl_ms', 'ids', 'cur'}
local ids = key_fields(hint, svc_fields)
local svc = redis.call('HMGET', KEYS[3], unpack(svc_fields))
local policy = svc[1]
if not policy then
  return {'service'}
end
local state, base = svc, 5  -- key i's fields are state[base + KEY_FIELDS * (i - 1) + 1 ..]
local fresh_ids = ''
if (svc[4] or '') ~= hint then
  fresh_ids = svc[4] or ''
  local fields = {}
  ids = key_fields(fresh_ids, fields)
  state, base = (#fields > 0 and redis.call('HMGET', KEYS[3], unpack(fields)) or {}), 0
end
local n = #ids
local slug = ARGV[3]
local function field(i, k) return state[base + KEY_FIELDS * (i - 1) + k] end

local subscribed = tenant[4]
local function wants(event_type)
  return subscribed and string.find(subscribed, ',' .. event_type .. ',', 1, true)
end
-- data: a table, or JSON already encoded (the per-delivery event skips cjson)
local function emit(event_type, data)
  if wants(event_type) then
    if type(data) == 'table' then data = cjson.encode(data) end
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 'type', event_type, 'data', data)
  end
end

-- today's counters in one HMGET: service, app, every key
local use_fields = {'s:' .. slug, 'a:' .. app_id}
for i = 1, n do use_fields[i + 2] = 'k:' .. ids[i] end
local counts = redis.call('HMGET', KEYS[4], unpack(use_fields))
local function used(i) return tonumber(counts[i + 2] or 0) end

local request_id = ARGV[12]
if request_id ~= '' then
  local done = redis.call('GET', KEYS[7])
  if done then
    -- a retry: answer what the first attempt picked, if that key is still in the service
    for i = 1, n do
      if ids[i] == done then
        local key = picked(done)
        return {'ok', tonumber(done), key[1], key[2], used(i), policy, svc[2] or '',
          demo and 1 or 0, fresh_ids}
      end
    end
  end
end

-- limits; the flag fields make the event once per day
local svc_max = tonumber(svc[2])
local app_max = app and tonumber(app[3])
local function limit_reached(flag, data)
  if redis.call('HSETNX', KEYS[4], flag, 1) == 1 then
    redis.call('EXPIRE', KEYS[4], ARGV[9])
    emit('service.limit_reached', data)
  end
end
if svc_max and tonumber(counts[1] or 0) >= svc_max then
  limit_reached('lr:' .. slug, {service = slug, scope = 'service', limit = svc_max})
  return {'limit'}
end
if app_max and tonumber(counts[2] or 0) >= app_max then
  limit_reached('lra:' .. app_id, {service = slug, scope = 'app', app_id = tonumber(app_id),
    limit = app_max})
  return {'limit'}
end

-- selection
local function active(i) return field(i, 1) == '1' end
local function under_limit(i)
  local key_max = tonumber(field(i, 2))
  return not key_max or used(i) < key_max
end

local ttl_ms = tonumber(svc[3]) or math.huge
local entered = {}  -- t:<id>, when each key entered rotation (time policy only)
if policy == 'time' and n > 0 then
  local t_fields = {}
  for i = 1, n do t_fields[i] = 't:' .. ids[i] end
  entered = redis.call('HMGET', KEYS[3], unpack(t_fields))
end
local function expired(i)
  local t0 = tonumber(entered[i])
  return t0 ~= nil and now >= t0 + ttl_ms
end

local pick = nil
local candidates = 0
if policy == 'usage' then
  -- least used today first; among equals the first in rotation order, which over a
  -- day's sequence deals deliveries round-robin
  local best = nil
  for i = 1, n do
    if active(i) then
      candidates = candidates + 1
      if under_limit(i) then
        local u = used(i)
        if not best or u < best then best, pick = u, i end
      end
    end
  end
else
  -- manual and time: walk the rotation order from the current key; the first usable key is
  -- the current one (moved on when the old one was disabled, removed or expired); a current
  -- key at its own daily limit overflows to the next usable key without becoming current
  local start = 1
  for i = 1, n do
    if ids[i] == svc[5] then start = i break end
  end
  local is_time = policy == 'time'
  local current = nil
  for step = 0, n - 1 do
    local i = (start - 1 + step) % n + 1
    if active(i) and not (is_time and expired(i)) then
      candidates = candidates + 1
      if not current then
        current = i
        if ids[i] ~= svc[5] then
          redis.call('HSET', KEYS[3], 'cur', ids[i])
          if is_time and svc[5] then
            emit('key.rotated', {service = slug, from_key_id = tonumber(svc[5]),
              to_key_id = tonumber(ids[i]), reason = 'expired'})
          end
        end
      end
      if under_limit(i) then
        pick = i
        -- a time-policy key's validity starts when it is first delivered
        if is_time and not entered[i] then
          redis.call('HSET', KEYS[3], 't:' .. ids[i], now)
        end
        break
      end
    end
  end
end

if not pick then
  if candidates > 0 then
    return {'limit'}
  end
  if redis.call('HSETNX', KEYS[3], 'noact', 1) == 1 then
    emit('service.no_active_keys', {service = slug})
  end
  return {'nokeys'}
end

-- counting: one HSET of the new values (the script is atomic, so read + write is exact)
local key_id = ids[pick]
local usage_today = used(pick) + 1
local svc_count = tonumber(counts[1] or 0) + 1
if app then
  local app_count = tonumber(counts[2] or 0) + 1
  redis.call('HSET', KEYS[4], 'k:' .. key_id, usage_today, 's:' .. slug, svc_count,
    'a:' .. app_id, app_count)
  if app_max and app_count >= app_max then
    limit_reached('lra:' .. app_id, {service = slug, scope = 'app', app_id = tonumber(app_id),
      limit = app_max})
  end
else
  redis.call('HSET', KEYS[4], 'k:' .. key_id, usage_today, 's:' .. slug, svc_count)
end
if request_id ~= '' then
  redis.call('SET', KEYS[7], key_id, 'PX', ARGV[13])
end
if usage_today == 1 then
  -- first count of this key today: (re)arm the hash's expiry, so counters need no cron
  redis.call('EXPIRE', KEYS[4], ARGV[9])
end
if svc_max and svc_count >= svc_max then
  limit_reached('lr:' .. slug, {service = slug, scope = 'service', limit = svc_max})
end
if subscribed ~= '' and wants('key.delivered') then
  -- slugs are [a-z0-9_-] and ids digits, so plain concatenation is valid JSON
  emit('key.delivered', '{"service":"' .. slug .. '","key_id":' .. key_id ..
    ',"usage_today":' .. usage_today .. (app and (',"app_id":' .. app_id) or '') .. '}')
end

local key = picked(key_id)
return {'ok', tonumber(key_id), key[1], key[2], usage_today, policy, svc[2] or '',
  demo and 1 or 0, fresh_ids}
