-- next_key: authenticate, check, select, count and record one delivery, atomically.
-- Units: times in ms since the epoch, days as whole UTC days since 1970-01-01.
-- KEYS[1] tenant hash       {t:T}:tenant     (read only when KEYS[3] holds no copy of its fields)
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
-- ARGV[14] 's:<slug>', ARGV[15] 'a:<app id>': today's counter fields of the service and app
-- ARGV[16 ..] for the n ids of ARGV[11], in order: 'k:<id>' each (counter fields), then
--          'a:<id>', 'm:<id>' each (state fields). They must be built from ARGV[11] (the
--          caller caches them with the hint), so the usual delivery builds no field name:
--          in this script a string concatenation, a table or a closure costs about as much
--          as reading a field
-- Returns, in check order (a request rejected before selection is not counted):
--   {'day', day}            KEYS[4] is not today's hash (caller's clock off by a midnight): retry
--   {'token'}               unknown tenant, app or secret; suspended (or deleted) tenant or app
--   {'ip'}                  client outside the tenant's or the app's allowlist
--   {'throttle', wait_ms}   demo tenant over its per-IP rate
--   {'service'}             no such service
--   {'limit', which}        a daily limit: 'service' or 'app' reached, or 'key': every key the
--                           policy could pick is at its own limit
--   {'nokeys'}              no active (and, for time policy, unexpired) key
--   {'ok', key_id, label, ciphertext, usage_today, policy, service max ('' = none), demo 0|1,
--    the service's key ids when the hint was stale, else '',
--    receipt: the key.delivered stream entry id ('' = none recorded); false when a retry
--             (ARGV[12]) was answered, so this call counted nothing,
--    undo: '' usually; else what else this call changed that delivery_refund.lua undoes, items
--          joined by ',': '<flag>=<entry id>' (it set that once-a-day flag of KEYS[4] and
--          recorded the event as that entry), 't' (it set the key's t:N),
--    the app's max ('' = none, or a tenant client token),
--    quota, remaining: the tightest daily limit that applies (service or app, the one with
--          fewer requests left; 0, 0 when none) and what is left of it after this delivery}
--   The caller decrypts after this script; when that fails it passes receipt and undo to
--   delivery_refund.lua, so a delivery that ends in a 500 uses up nothing.
-- Events once per UTC day: a flag field in KEYS[4] (which expires with the day) is set only
-- when its event is recorded, so a tenant that subscribes later in the day still hears of it.
-- The limit flags name the limit ('lr:<slug>:<max>' service.limit_reached, 'lra:<app>:<max>'
-- app.limit_reached, 'lw:<slug>:<max>' service.limit_warning), so a changed limit is
-- reported again when reached; 'ku:<id>' (key.rotated, reason 'usage') is once per key.

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

-- the service's settings, its tenant's fields a delivery reads (copied into every service hash
-- by tenant_update.lua and service_create.lua) and, named by the hint, its keys' state, in one
-- HMGET: every hash and field read from a cold hash costs cache misses, so only what every
-- policy needs is read here; validity times are read by the time policy alone, and the label
-- and sealed secret of the picked key only
local n = (#ARGV - 15) / 3
if n % 1 ~= 0 then
  return redis.error_reply('next_key: ARGV[16 ..] must hold three field names per hinted id')
end
local svc = redis.call('HMGET', KEYS[3], 'policy', 'max', 'ttl_ms', 'ids', 'cur', 'warn',
  '@client', '@demo', '@allow', '@events', unpack(ARGV, 16 + n, 15 + 3 * n))
local policy = svc[1]
local tenant_token_hash, demo_flag, tenant_allow, subscribed = svc[7], svc[8], svc[9], svc[10]
if not (tenant_token_hash and demo_flag and tenant_allow and subscribed) then
  -- no such service (the token is still checked first), or one stored before services held
  -- copies: the tenant hash is the source, and such a service gets its copies now (derived
  -- data, so written whether or not this request's token is good)
  local t = redis.call('HMGET', KEYS[1], 'client', 'demo', 'allow', 'events')
  tenant_token_hash, demo_flag, tenant_allow, subscribed = t[1], t[2], t[3], t[4]
  if policy and tenant_token_hash then
    redis.call('HSET', KEYS[3], '@client', tenant_token_hash, '@demo', demo_flag or '',
      '@allow', tenant_allow or '', '@events', subscribed or '')
  end
end

local app_id = ARGV[2]
local token_hash = tenant_token_hash
local app = nil
if app_id ~= '' then
  app = redis.call('HMGET', KEYS[2], 'token', 'allow', 'max', 'suspended')
  token_hash = app[1]
end
-- with an app token the tenant's must exist too: an app of an unknown tenant is not a token;
-- a suspended or deleted tenant's client hash is '' (tenant_update.lua), which refuses its
-- client and app tokens alike; a suspended app ('1') refuses its own
if not tenant_token_hash or tenant_token_hash == '' or token_hash ~= ARGV[1]
    or (app and app[4] == '1') then
  return {'token'}
end

-- allowlists are concatenated 64-hex-digit chunks lo||hi; equal-width hex compares like numbers
local app_allow = app and app[2]
if (tenant_allow and tenant_allow ~= '') or (app_allow and app_allow ~= '') then
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
  if not allowed(tenant_allow) or not allowed(app_allow) then
    return {'ip'}
  end
end

local demo = demo_flag == '1'
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

if not policy then
  return {'service'}
end
-- key i: counter field kf[kb + i] ('k:<id>'), active state[sb + 2i - 1], own limit state[sb + 2i]
local kf, kb, state, sb = ARGV, 15, svc, 10
local fresh_ids = ''
if (svc[4] or '') ~= ARGV[11] then
  fresh_ids = svc[4] or ''
  local fields = {}
  kf, kb, n = {}, 0, 0
  for id in string.gmatch(fresh_ids, '[^,]+') do
    n = n + 1
    kf[n] = 'k:' .. id
    fields[2 * n - 1] = 'a:' .. id
    fields[2 * n] = 'm:' .. id
  end
  state, sb = (n > 0 and redis.call('HMGET', KEYS[3], unpack(fields)) or {}), 0
end
local slug = ARGV[3]

-- data: a table, or JSON already encoded (the per-delivery event skips the table); flag: for a
-- once-a-day event (see the header), its flag field in KEYS[4], set here with the event, which
-- is not recorded when the flag is already set. Returns the stream entry id, nil when nothing
-- was recorded. (One closure for both kinds: each costs about as much as a field read.)
local function emit(event_type, data, flag)
  if subscribed and string.find(subscribed, ',' .. event_type .. ',', 1, true)
      and not (flag and redis.call('HSETNX', KEYS[4], flag, 1) == 0) then
    if flag then redis.call('EXPIRE', KEYS[4], ARGV[9]) end
    if type(data) == 'table' then data = cjson.encode(data) end
    return redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 'type', event_type,
      'data', data)
  end
end

-- today's counters in one HMGET: service, app, then key i at counts[2 + i]
local counts = redis.call('HMGET', KEYS[4], ARGV[14], ARGV[15], unpack(kf, kb + 1, kb + n))
local svc_max = tonumber(svc[2])
local app_max = app and tonumber(app[3])

local request_id = ARGV[12]
if request_id ~= '' then
  local done = redis.call('GET', KEYS[7])
  if done then
    -- a retry: answer what the first attempt picked, if that key is still in the service
    local done_field = 'k:' .. done
    for i = 1, n do
      if kf[kb + i] == done_field then
        local key = redis.call('HMGET', KEYS[3], 'l:' .. done, 'c:' .. done)
        local quota, left = 0, 0
        if svc_max then quota, left = svc_max, svc_max - tonumber(counts[1] or 0) end
        if app_max and (quota == 0 or app_max - tonumber(counts[2] or 0) < left) then
          quota, left = app_max, app_max - tonumber(counts[2] or 0)
        end
        return {'ok', tonumber(done), key[1], key[2], tonumber(counts[2 + i] or 0), policy,
          svc[2] or '', demo and 1 or 0, fresh_ids, false, '', app and app[3] or '', quota,
          math.max(left, 0)}
      end
    end
  end
end

-- limits (a request refused here records the event if the one that reached the limit could
-- not: it was not subscribed then, or the limit has changed since)
if svc_max and tonumber(counts[1] or 0) >= svc_max then
  emit('service.limit_reached', {service = slug, scope = 'service', limit = svc_max},
    'lr:' .. slug .. ':' .. svc[2])
  return {'limit', 'service'}
end
if app_max and tonumber(counts[2] or 0) >= app_max then
  emit('app.limit_reached', {service = slug, app_id = tonumber(app_id), limit = app_max},
    'lra:' .. app_id .. ':' .. app[3])
  return {'limit', 'app'}
end

-- selection (loops index the tables directly: closures cost as much as field reads here)
local pick = nil
local undo = ''  -- see the 'ok' reply in the header; built in rare branches only
local candidates = 0
if policy == 'usage' then
  -- least used today first; among equals the first in rotation order, which over a
  -- day's sequence deals deliveries round-robin
  local best = nil
  for i = 1, n do
    if state[sb + 2 * i - 1] == '1' then
      candidates = candidates + 1
      local used = tonumber(counts[2 + i] or 0)
      local key_max = tonumber(state[sb + 2 * i])
      if (not key_max or used < key_max) and (not best or used < best) then
        best, pick = used, i
      end
    end
  end
else
  -- manual and time: walk the rotation order from 'cur' (the manual primary, the time
  -- policy's key in use); the first usable key is the current one (moved on here when the old
  -- one expired; the management scripts move it when it is disabled or deleted); a current key
  -- at its own daily limit overflows to the next usable key without becoming current
  local is_time = policy == 'time'
  local cur = svc[5]
  local cur_field = cur and ('k:' .. cur)
  local start = 1
  for i = 1, n do
    if kf[kb + i] == cur_field then start = i break end
  end
  local ttl_ms = tonumber(svc[3]) or math.huge
  local entered = {}  -- t:<id>, when each key entered rotation (time policy only)
  if is_time and n > 0 then
    local t_fields = {}
    for i = 1, n do t_fields[i] = 't' .. string.sub(kf[kb + i], 2) end
    entered = redis.call('HMGET', KEYS[3], unpack(t_fields))
  end
  local current = nil
  for step = 0, n - 1 do
    local i = (start - 1 + step) % n + 1
    local t0 = tonumber(entered[i])
    if state[sb + 2 * i - 1] == '1' and not (t0 and now >= t0 + ttl_ms) then
      candidates = candidates + 1
      if not current then
        current = i
        if kf[kb + i] ~= cur_field then
          local id = string.sub(kf[kb + i], 3)
          redis.call('HSET', KEYS[3], 'cur', id)
          if is_time and cur then
            emit('key.rotated', {service = slug, from_key_id = tonumber(cur),
              to_key_id = tonumber(id), reason = 'expired'})
          end
        end
      end
      local key_max = tonumber(state[sb + 2 * i])
      if not key_max or tonumber(counts[2 + i] or 0) < key_max then
        pick = i
        -- a time-policy key's validity starts when it is first delivered
        if is_time and not entered[i] then
          redis.call('HSET', KEYS[3], 't' .. string.sub(kf[kb + i], 2), now)
          undo = 't'
        end
        break
      end
    end
  end
  if pick and pick ~= current then
    -- the current key is at its own daily limit: deliveries move on to the next usable key
    -- until the day ends (or its limit changes), which is reported once per key and day
    local from, to = string.sub(kf[kb + current], 3), string.sub(kf[kb + pick], 3)
    local entry = emit('key.rotated', {service = slug, from_key_id = tonumber(from),
      to_key_id = tonumber(to), reason = 'usage'}, 'ku:' .. from)
    if entry then undo = undo .. ',ku:' .. from .. '=' .. entry end
  end
end

if not pick then
  if candidates > 0 then
    return {'limit', 'key'}
  end
  if redis.call('HSETNX', KEYS[3], 'noact', 1) == 1 then
    emit('service.no_active_keys', {service = slug})
  end
  return {'nokeys'}
end

-- counting: one HSET of the new values (the script is atomic, so read + write is exact)
local count_field = kf[kb + pick]
local key_id = string.sub(count_field, 3)
local usage_today = tonumber(counts[2 + pick] or 0) + 1
local svc_count = tonumber(counts[1] or 0) + 1
local quota, left = 0, 0
if svc_max then quota, left = svc_max, svc_max - svc_count end
if app then
  local app_count = tonumber(counts[2] or 0) + 1
  redis.call('HSET', KEYS[4], count_field, usage_today, ARGV[14], svc_count,
    ARGV[15], app_count)
  if app_max then
    if quota == 0 or app_max - app_count < left then quota, left = app_max, app_max - app_count end
    if app_count >= app_max then
      local flag = 'lra:' .. app_id .. ':' .. app[3]
      local entry = emit('app.limit_reached',
        {service = slug, app_id = tonumber(app_id), limit = app_max}, flag)
      if entry then undo = undo .. ',' .. flag .. '=' .. entry end
    end
  end
else
  redis.call('HSET', KEYS[4], count_field, usage_today, ARGV[14], svc_count)
end
if request_id ~= '' then
  redis.call('SET', KEYS[7], key_id, 'PX', ARGV[13])
end
if usage_today == 1 then
  -- first count of this key today: (re)arm the hash's expiry, so counters need no cron
  redis.call('EXPIRE', KEYS[4], ARGV[9])
end
if svc_max then
  local warn_percent = tonumber(svc[6])
  local kind, flag, data = nil, nil, nil
  if svc_count >= svc_max then
    kind, flag = 'service.limit_reached', 'lr:' .. slug .. ':' .. svc[2]
    data = {service = slug, scope = 'service', limit = svc_max}
  elseif warn_percent and svc_count * 100 >= svc_max * warn_percent then
    -- the early warning: integers compared, so 80% of 10 is reached at 8, not 7.99
    kind, flag = 'service.limit_warning', 'lw:' .. slug .. ':' .. svc[2]
    data = {service = slug, limit = svc_max, limit_warning_percent = warn_percent,
      usage_today = svc_count}
  end
  if kind then
    local entry = emit(kind, data, flag)
    if entry then undo = undo .. ',' .. flag .. '=' .. entry end
  end
end
local receipt = ''
if subscribed and string.find(subscribed, ',key.delivered,', 1, true) then
  -- ids and counts are digits; the slug is JSON-encoded, as a service stored by an earlier
  -- version may hold any character. Encoding the slug alone adds 0.04 us to the plain
  -- concatenation, cjson.encode of a table 0.3 us (each form timed with os.clock over 200,000
  -- runs inside one script, bench machine, 2026-12-02; the usage-events scenario cannot
  -- resolve either)
  receipt = emit('key.delivered', '{"service":' .. cjson.encode(slug) .. ',"key_id":' ..
    key_id .. ',"usage_today":' .. usage_today .. (app and (',"app_id":' .. app_id) or '') ..
    '}')
end

local key = redis.call('HMGET', KEYS[3], 'l:' .. key_id, 'c:' .. key_id)
return {'ok', tonumber(key_id), key[1], key[2], usage_today, policy, svc[2] or '',
  demo and 1 or 0, fresh_ids, receipt, undo, app and app[3] or '', quota, left}
