-- next_key: authenticate, check, select, count and record one delivery, atomically.
-- Units: times in ms since the epoch, days as whole UTC days since 1970-01-01.
-- Reads as its steps, in the order a request meets them: clock, read, authenticate, allowlist,
-- throttle, retry, limits, per-minute, select (by policy; health when nothing is available),
-- recover, count, per-minute record, record; each a delimited block (a closure per step would
-- cost every delivery for nothing). The prelude (lib/prelude.lua) holds the clock, id lists,
-- event emission, the allowlist check and key health's key_available (every policy's
-- selection asks it whether a key may be handed out now); field names are declared in
-- rotator/store/keys.py.
-- KEYS[1] tenant hash       {t:T}:tenant     (read only when the service does not exist, so an
--                                            unknown service is told apart from a bad token)
-- KEYS[2] app hash          {t:T}:app:<id>   (when no app token: any name in the slot, unused)
-- KEYS[3] service hash      {t:T}:svc:<slug>
-- KEYS[4] usage hash prefix {t:T}:use:       this script names today's hash KEYS[4] .. day from
--         its own clock (one clock: no caller's day can disagree with it at midnight). The
--         declared name carries the tenant's hash tag, so the hash it names is in the same slot:
--         the call is routed there, and the server refuses (loudly) any key outside it
-- KEYS[5] demo throttle     {t:T}:gcra:<iphex>
-- KEYS[6] event stream      {t:T}:events
-- KEYS[7] request record    {t:T}:rid:<request id>   (no request id: any name in the slot, unused)
-- KEYS[8] service window    {t:T}:wins:<slug>   LIST of the service's delivery times (ms),
--                                            newest first, at most its per-minute limit long
-- KEYS[9] key window prefix {t:T}:wink:      key N's window is KEYS[9] .. N (named here, like
--                                            the usage hash: same hash tag, same slot)
-- ARGV[1] sha256 hex of the token's secret part
-- ARGV[2] app id ('' = tenant client token)
-- ARGV[3] service slug
-- ARGV[4] client address, 32 hex digits in the IPv6 space ('' = unknown)
-- ARGV[5] now_ms ('' = Redis TIME: one clock for every API host; tests inject a time here)
-- ARGV[6] demo emission interval ms (60000 / requests per minute)
-- ARGV[7] demo burst (requests)
-- ARGV[8] usage hash ttl s (history kept)
-- ARGV[9] event stream cap (approximate)
-- ARGV[10] request id set by a trusted proxy ('' = none): a retry of the same request (nginx
--          resending a GET whose API process died after this script ran) by the same caller
--          gets the key the first attempt picked while it is usable, counted once
-- ARGV[11] request record ttl ms
-- ARGV[12] the service's key ids as the caller last saw them, comma-separated ('' = unknown)
-- ARGV[13 ..] the same ids, one each: a hint that lets one HMGET read the service's settings
--          and its keys' state together; when it is stale the keys are read again, so the hint
--          never changes a decision. (Sent split, so this script does not split a list on
--          every delivery: 0.5 us a call, timed with os.clock over 200,000 runs, 3 ids.)
-- Returns, in check order (a request rejected before selection is not counted):
--   {'token'}               unknown tenant, app or secret; suspended (or deleted) tenant or app
--   {'ip'}                  client outside the tenant's or the app's allowlist
--   {'throttle', wait_ms}   demo tenant over its per-IP rate
--   {'service'}             no such service
--   {'rate', which, wait_ms} a per-minute limit: 'service' reached, or 'key': every key the policy
--                           could pick is at its own limit (a daily or a per-minute one) and at
--                           least one frees a per-minute slot in wait_ms (the soonest)
--   {'limit', which, now_ms} a daily limit: 'service' or 'app' reached, or 'key': every key the
--                           policy could pick is at its own limit
--   {'cooling', wait_ms, now_ms} no key available, and some active key is cooling down (key
--                           health: report.lua); wait_ms until the first one recovers
--   {'nokeys'}              no active (and, for time policy, unexpired) key
--   {'ok', key_id, label, ciphertext, usage_today, policy, service max ('' = none), demo 0|1,
--    the service's key ids (comma-separated) when the hint was stale, else '',
--    receipt: the key.delivered stream entry id ('' = none recorded); false when a retry
--             (ARGV[11]) was answered, so this call counted nothing,
--    undo: '' usually; else what else this call changed that delivery_refund.lua undoes, items
--          joined by ',': '<flag>=<entry id>' (it set that once-a-day flag of today's usage
--          hash and recorded the event as that entry), 't' (it set the key's t:N),
--    the app's max ('' = none, or a tenant client token),
--    quota, remaining: the tightest daily limit that applies (service or app, the one with
--          fewer requests left; 0, 0 when none) and what is left of it after this delivery,
--    now_ms: this script's clock (the caller derives the day and the seconds to midnight),
--    the service's max requests per minute ('' = none)}
--   The caller decrypts after this script; when that fails it passes receipt and undo to
--   delivery_refund.lua, so a delivery that ends in a 500 uses up nothing.
-- Events once per UTC day: a flag field in today's usage hash (which expires with the day) is
-- set only when its event is recorded, so a tenant that subscribes later in the day still hears
-- of it. The limit flags name the limit ('lr:<slug>:<max>' service.limit_reached,
-- 'lra:<app>:<max>' app.limit_reached, 'lw:<slug>:<max>' service.limit_warning), so a changed
-- limit is reported again when reached; 'ku:<id>' (key.rotated, reason 'usage') is once per key.
-- Per-minute limits are a sliding log: a delivery at t is allowed while fewer than R deliveries
-- (of the service, of the key) fall in (t - 60 s, t]; the window lists keep the newest R times,
-- so the R-th newest says both whether a slot is free and when the next one frees.
local MINUTE_MS = 60000
local WINDOW_KEEP_MS = 600000  -- a window list's TTL (server clock): the window is one minute of
-- this script's clock, which tests inject; ten minutes outlasts any test run on one tenant

-- step: clock ---------------------------------------------------------------------------------
local now = clock_ms(ARGV[5])
-- the day named from this clock (a number as text costs a sprintf, 0.3 us: the price of one
-- clock, which no caller's day can then contradict)
local usage_key = KEYS[4] .. math.floor(now / 86400000)
local slug, app_id, events_maxlen = ARGV[3], ARGV[2], ARGV[9]

-- step: read ----------------------------------------------------------------------------------
-- the service's settings, its copies of the tenant's fields (tenant_update.lua keeps them; the
-- migration to schema 2 gave every older service its copies) and, named by the hint, its keys'
-- state, in one HMGET: every hash and field read from a cold hash costs cache misses, so only
-- what every policy needs is read here; validity times are read by the time policy alone, and
-- the label and sealed secret of the picked key only
local FIXED = 12
local n = #ARGV - 12
local ids = {unpack(ARGV, 13)}
local read = {'policy', 'max', 'ttl_ms', 'ids', 'cur', 'warn', '@client', '@demo', '@allow',
  '@events', 'rpm', 'cool'}
for i = 1, n do
  read[FIXED + 3 * i - 2], read[FIXED + 3 * i - 1], read[FIXED + 3 * i] =
    'a:' .. ids[i], 'm:' .. ids[i], 'q:' .. ids[i]
end
local svc = redis.call('HMGET', KEYS[3], unpack(read))
local policy, svc_max_field = svc[1], svc[2]
local tenant_token_hash, demo_flag, tenant_allow, events = svc[7], svc[8], svc[9], svc[10]
-- the keys cooling down (key health; nil when none, the usual case: one field read, no parse)
local cooling = cooling_table(svc[12])
if not policy then
  -- no such service: the tenant's own fields decide whether it is that or a bad token
  local t = redis.call('HMGET', KEYS[1], 'client', 'demo', 'allow')
  tenant_token_hash, demo_flag, tenant_allow = t[1], t[2], t[3]
elseif not (tenant_token_hash and demo_flag and tenant_allow and events) then
  -- a service without its copies would be open to any address: refuse loudly instead
  return redis.error_reply('next_key: service ' .. slug .. ' lacks the tenant copies; run '
    .. '`rotator migrate`')
end

-- steps: authenticate, allowlist (the prelude's caller_refused, which report.lua shares) -----
local app = nil
if app_id ~= '' then
  app = redis.call('HMGET', KEYS[2], 'token', 'allow', 'suspended', 'max')
end
local refused = caller_refused(tenant_token_hash, tenant_allow, app, ARGV[1], ARGV[4])
if refused then
  return {refused}
end

-- step: throttle (demo tenants) ---------------------------------------------------------------
-- GCRA: each request moves the theoretical arrival time (tat) one interval on; a request is
-- early (rejected) when tat would run more than `burst` intervals ahead
local demo = demo_flag == '1'
if demo then
  local interval = tonumber(ARGV[6])
  local tat = math.max(tonumber(redis.call('GET', KEYS[5]) or 0), now)
  local allow_at = tat + interval - interval * tonumber(ARGV[7])
  if now < allow_at then
    return {'throttle', allow_at - now}
  end
  redis.call('SET', KEYS[5], tat + interval, 'PX', tat + interval - now)
end

if not policy then
  return {'service'}
end

-- the keys in rotation order: key i's active flag is state[state_at + 3i - 2], its own daily
-- limit state[state_at + 3i - 1], its own per-minute limit state[state_at + 3i]; the hint's are
-- used only when the hint is current
local fresh_ids = ''
local state, state_at = svc, FIXED
if (svc[4] or '') ~= ARGV[12] then
  fresh_ids = svc[4] or ''
  ids = split_ids(fresh_ids)
  n = #ids
  local fields = {}
  for i = 1, n do
    fields[3 * i - 2], fields[3 * i - 1], fields[3 * i] = 'a:' .. ids[i], 'm:' .. ids[i],
      'q:' .. ids[i]
  end
  state, state_at = (n > 0 and redis.call('HMGET', KEYS[3], unpack(fields)) or {}), 0
end

-- today's counters in one HMGET: the service's, the app's, then key i's at counts[2 + i]
local count_fields = {'s:' .. slug, 'a:' .. app_id}
for i = 1, n do count_fields[2 + i] = 'k:' .. ids[i] end
-- under usage, then whether any key of the service failed to decrypt today (sdf:<slug>)
if policy == 'usage' then count_fields[3 + n] = 'sdf:' .. slug end
local counts = redis.call('HMGET', usage_key, unpack(count_fields))
local svc_count, app_count = tonumber(counts[1] or 0), tonumber(counts[2] or 0)
local svc_max = tonumber(svc_max_field)
local app_max = app and tonumber(app[4])

-- the tightest daily limit that applies (service or app, the one with fewer requests left)
-- and what is left of it; 0, 0 when none
local function quota_left()
  local quota, left = 0, 0
  if svc_max then quota, left = svc_max, svc_max - svc_count end
  if app_max and (quota == 0 or app_max - app_count < left) then
    quota, left = app_max, app_max - app_count
  end
  return quota, left
end

local function answer(i, usage_today, receipt, undo, quota, left)
  local key = redis.call('HMGET', KEYS[3], 'l:' .. ids[i], 'c:' .. ids[i])
  return {'ok', tonumber(ids[i]), key[1], key[2], usage_today, policy, svc_max_field or '',
    demo and 1 or 0, fresh_ids, receipt, undo, app and app[4] or '', quota, left, now,
    svc[11] or ''}
end

-- usable: active, not cooling down, and under the time policy its lifetime not over
local ttl_ms = tonumber(svc[3]) or math.huge
local entered = {}  -- t:<id>, when each key entered rotation (time policy only)
if policy == 'time' and n > 0 then
  local t_fields = {}
  for i = 1, n do t_fields[i] = 't:' .. ids[i] end
  entered = redis.call('HMGET', KEYS[3], unpack(t_fields))
end
local function usable(i)
  local t0 = tonumber(entered[i])
  return key_available(state[state_at + 3 * i - 2], cooling, ids[i], now)
    and not (t0 and now >= t0 + ttl_ms)
end

-- step: retry (a proxy resending a request this script already answered) --------------------
-- the same caller (app, or the tenant's client token) gets the key it was answered with,
-- uncounted, while that key is still usable; another caller's id, or a key disabled, cooling
-- or expired since, is a new delivery (a reused id is never a way around a limit or a state)
local request_id = ARGV[10]
if request_id ~= '' then
  local done_id, done_app = string.match(redis.call('GET', KEYS[7]) or '', '^(%d+):(.*)$')
  if done_app == app_id then
    for i = 1, n do
      if ids[i] == done_id then
        if usable(i) then
          local quota, left = quota_left()
          return answer(i, tonumber(counts[2 + i] or 0), false, '', quota, math.max(left, 0))
        end
        break
      end
    end
  end
end

-- step: limits --------------------------------------------------------------------------------
-- a request refused here records the event if the one that reached the limit could not (it
-- was not subscribed then, or the limit has changed since)
if svc_max and svc_count >= svc_max then
  emit_daily(usage_key, ARGV[8], KEYS[6], events_maxlen, events, 'service.limit_reached',
    {service = slug, scope = 'service', limit = svc_max}, 'lr:' .. slug .. ':' .. svc_max_field)
  return {'limit', 'service', now}
end
if app_max and app_count >= app_max then
  emit_daily(usage_key, ARGV[8], KEYS[6], events_maxlen, events, 'app.limit_reached',
    {service = slug, app_id = tonumber(app_id), limit = app_max},
    'lra:' .. app_id .. ':' .. app[4])
  return {'limit', 'app', now}
end

-- step: per-minute (the service's) -----------------------------------------------------------
-- the service's R-th newest delivery inside the last minute: R already in the window, refused
-- until that one slides out (a refusal counts nothing and takes no slot)
local svc_rpm = tonumber(svc[11])
if svc_rpm then
  local nth = tonumber(redis.call('LINDEX', KEYS[8], svc_rpm - 1))
  if nth and nth > now - MINUTE_MS then
    return {'rate', 'service', nth + MINUTE_MS - now}
  end
end

-- step: select, by policy ---------------------------------------------------------------------
-- Every policy picks among the keys that pass one predicate: usable (active; under the time
-- policy, its lifetime not over) and below its own limits (today's count under its daily limit,
-- a free slot in its per-minute window). Usable keys count as candidates: none is a 503, some
-- but all at a limit a 429 ('rate' when one frees a per-minute slot, the soonest in rate_wait).
local candidates, rate_wait = 0, nil
-- nil when key i is below its limits, else which one it is at: 'day' or 'minute'
local function at_limit(i)
  local key_max = tonumber(state[state_at + 3 * i - 1])
  if key_max and tonumber(counts[2 + i] or 0) >= key_max then return 'day' end
  local rpm = tonumber(state[state_at + 3 * i])
  if rpm then
    local nth = tonumber(redis.call('LINDEX', KEYS[9] .. ids[i], rpm - 1))
    if nth and nth > now - MINUTE_MS then
      local wait = nth + MINUTE_MS - now
      if not rate_wait or wait < rate_wait then rate_wait = wait end
      return 'minute'
    end
  end
  return nil
end
-- the predicate, for the policies that look at every key
local function available(i)
  if not usable(i) then return false end
  candidates = candidates + 1
  return at_limit(i) == nil
end

local pick = nil
local undo = ''  -- see the 'ok' reply in the header; built in rare branches only
if policy == 'usage' then
  -- least used today first; among equals the first in rotation order, which over a day's
  -- sequence deals deliveries round-robin
  local best = nil
  -- a key's decrypt failures count as its deliveries: the refund takes a failed delivery's
  -- k:<id> back (delivery_refund.lua), so ranked by k alone a key that cannot be decrypted
  -- would stay least used and take every request. Read only on a day the service had one
  -- (sdf:<slug>), so other days pay one field of the HMGET above, not one per key.
  local failed = {}
  if n > 0 and counts[3 + n] then  -- no key left (the failed one deleted): no fields
    local fields = {}
    for i = 1, n do fields[i] = 'df:' .. ids[i] end
    failed = redis.call('HMGET', usage_key, unpack(fields))
  end
  for i = 1, n do
    if available(i) then
      local used = tonumber(counts[2 + i] or 0) + tonumber(failed[i] or 0)
      if not best or used < best then best, pick = used, i end
    end
  end
elseif policy == 'round_robin' then
  -- strict order of key ids: the next available id after the one delivered last ('rr'),
  -- wrapping to the lowest; a deleted last key needs no repair (the next id above it is next)
  local last = tonumber(redis.call('HGET', KEYS[3], 'rr')) or 0
  local after, lowest = nil, nil
  for i = 1, n do
    if available(i) then
      local id = tonumber(ids[i])
      if id > last and (not after or id < tonumber(ids[after])) then after = i end
      if not lowest or id < tonumber(ids[lowest]) then lowest = i end
    end
  end
  pick = after or lowest
  if pick then redis.call('HSET', KEYS[3], 'rr', ids[pick]) end
elseif policy == 'weighted' then
  -- smooth weighted round robin (nginx's): every available key's current weight cw grows by
  -- its weight w (default 1), the largest is picked (ties: the lowest id) and loses the total;
  -- over a cycle of sum(w) deliveries each key gets exactly w, spread evenly. Keys not
  -- available keep their cw; management changes to keys or weights restart the cycle
  -- (lib/rotation.lua restart_weighted)
  local wf = {}
  for i = 1, n do wf[2 * i - 1], wf[2 * i] = 'w:' .. ids[i], 'cw:' .. ids[i] end
  local wv = n > 0 and redis.call('HMGET', KEYS[3], unpack(wf)) or {}
  local total, best, writes = 0, nil, {}
  local cw = {}
  for i = 1, n do
    if available(i) then
      local w = tonumber(wv[2 * i - 1]) or 1
      cw[i] = (tonumber(wv[2 * i]) or 0) + w
      total = total + w
      if not pick or cw[i] > best or (cw[i] == best and tonumber(ids[i]) < tonumber(ids[pick]))
      then
        pick, best = i, cw[i]
      end
    end
  end
  if pick then
    cw[pick] = cw[pick] - total
    local m = 0
    for i, v in pairs(cw) do
      writes[m + 1], writes[m + 2] = 'cw:' .. ids[i], v
      m = m + 2
    end
    redis.call('HSET', KEYS[3], unpack(writes))
  end
elseif policy == 'least_recently_used' then
  -- the available key delivered longest ago: lu:N is the service's delivery sequence number
  -- ('lseq') at key N's last delivery under this policy (a sequence, not a time: deliveries in
  -- the same millisecond stay ordered); never delivered first, ties by the lowest id
  local lf = {'lseq'}
  for i = 1, n do lf[i + 1] = 'lu:' .. ids[i] end
  local lv = redis.call('HMGET', KEYS[3], unpack(lf))
  local best = nil
  for i = 1, n do
    if available(i) then
      local seen = tonumber(lv[i + 1]) or 0
      if not pick or seen < best or (seen == best and tonumber(ids[i]) < tonumber(ids[pick]))
      then
        pick, best = i, seen
      end
    end
  end
  if pick then
    local seq = (tonumber(lv[1]) or 0) + 1
    redis.call('HSET', KEYS[3], 'lseq', seq, 'lu:' .. ids[pick], seq)
  end
else
  -- manual and time: walk the rotation order from 'cur' (the manual primary, the time
  -- policy's key in use); the first usable key is the current one (moved on here when the old
  -- one expired; the management scripts move it when it is disabled or deleted); a current
  -- key at one of its own limits overflows to the next available key without becoming current
  -- (lib/rotation.lua states the same walk for the management scripts)
  local is_time = policy == 'time'
  local cur = svc[5]
  local start = 1
  for i = 1, n do
    if ids[i] == cur then start = i break end
  end
  local current, current_at = nil, nil
  for step = 0, n - 1 do
    local i = (start - 1 + step) % n + 1
    if usable(i) then
      candidates = candidates + 1
      local limit = at_limit(i)
      if not current then
        current, current_at = i, limit
        if ids[i] ~= cur then
          redis.call('HSET', KEYS[3], 'cur', ids[i])
          -- 'expired' only when the pointer's key lifetime ended: a pointer left on a
          -- disabled key (nothing else usable then) moves on without an event
          local t_cur = ids[start] == cur and tonumber(entered[start])
          if is_time and t_cur and now >= t_cur + ttl_ms then
            emit(KEYS[6], events_maxlen, events, 'key.rotated', {service = slug,
              from_key_id = tonumber(cur), to_key_id = tonumber(ids[i]), reason = 'expired'})
          end
        end
      end
      if not limit then
        pick = i
        -- a time-policy key's validity starts when it is first delivered
        if is_time and not entered[i] then
          redis.call('HSET', KEYS[3], 't:' .. ids[i], now)
          undo = 't'
        end
        break
      end
    end
  end
  if pick and pick ~= current and current_at == 'day' then
    -- the current key is at its own daily limit: deliveries move on to the next usable key
    -- until the day ends (or its limit changes), which is reported once per key and day (a
    -- per-minute overflow lasts seconds and is not reported)
    local from = ids[current]
    local entry = emit_daily(usage_key, ARGV[8], KEYS[6], events_maxlen, events, 'key.rotated',
      {service = slug, from_key_id = tonumber(from), to_key_id = tonumber(ids[pick]),
        reason = 'usage'}, 'ku:' .. from)
    if entry then undo = undo .. ',ku:' .. from .. '=' .. entry end
  end
end
if not pick then
  if rate_wait then
    return {'rate', 'key', rate_wait}
  end
  if candidates > 0 then
    return {'limit', 'key', now}
  end
  -- step: health (every active key cooling down) ----------------------------------------------
  -- the client may try again when the first cooldown ends; keys disabled only: 'nokeys'
  if cooling then
    local soonest = nil
    for i = 1, n do
      local until_ms = cooling[ids[i]]
      if until_ms and now < until_ms and state[state_at + 3 * i - 2] == '1'
          and (not soonest or until_ms < soonest) then
        soonest = until_ms
      end
    end
    if soonest then return {'cooling', soonest - now, now} end
  end
  if redis.call('HSETNX', KEYS[3], 'noact', 1) == 1 then
    emit(KEYS[6], events_maxlen, events, 'service.no_active_keys', {service = slug})
  end
  return {'nokeys'}
end

-- step: recover (key health) -------------------------------------------------------------------
-- the picked key's cooldown has ended (else it would not be available): it has recovered; its
-- entry goes and key.recovered is recorded, once
local key_id = ids[pick]
if cooling and cooling[key_id] then
  cooling[key_id] = nil
  store_cooling(KEYS[3], cooling)
  emit(KEYS[6], events_maxlen, events, 'key.recovered', {service = slug,
    key_id = tonumber(key_id)})
end

-- step: count ---------------------------------------------------------------------------------
-- one HSET of the new values (the script is atomic, so read + write is exact)
local usage_today = tonumber(counts[2 + pick] or 0) + 1
svc_count = svc_count + 1
if app then
  app_count = app_count + 1
  redis.call('HSET', usage_key, count_fields[2 + pick], usage_today, count_fields[1], svc_count,
    count_fields[2], app_count)
else
  redis.call('HSET', usage_key, count_fields[2 + pick], usage_today, count_fields[1], svc_count)
end
if usage_today == 1 then
  -- first count of this key today: (re)arm the hash's expiry, so counters need no cron
  redis.call('EXPIRE', usage_key, ARGV[8])
end
if request_id ~= '' then
  redis.call('SET', KEYS[7], key_id .. ':' .. app_id, 'PX', ARGV[11])
end

-- step: per-minute (record) -------------------------------------------------------------------
-- this delivery's time in the windows of the limits that apply, newest first, trimmed to the
-- limit (older entries can no longer decide anything: the R-th newest does)
if svc_rpm then
  redis.call('LPUSH', KEYS[8], now)
  redis.call('LTRIM', KEYS[8], 0, svc_rpm - 1)
  redis.call('PEXPIRE', KEYS[8], WINDOW_KEEP_MS)
end
local key_rpm = tonumber(state[state_at + 3 * pick])
if key_rpm then
  local window = KEYS[9] .. key_id
  redis.call('LPUSH', window, now)
  redis.call('LTRIM', window, 0, key_rpm - 1)
  redis.call('PEXPIRE', window, WINDOW_KEEP_MS)
end

-- step: record (events) -----------------------------------------------------------------------
-- each once-a-day event this delivery records is added to `undo`, for delivery_refund.lua
if app_max and app_count >= app_max then
  local flag = 'lra:' .. app_id .. ':' .. app[4]
  local entry = emit_daily(usage_key, ARGV[8], KEYS[6], events_maxlen, events,
    'app.limit_reached', {service = slug, app_id = tonumber(app_id), limit = app_max}, flag)
  if entry then undo = undo .. ',' .. flag .. '=' .. entry end
end
if svc_max then
  local warn_percent = tonumber(svc[6])
  local kind, flag, data = nil, nil, nil
  if svc_count >= svc_max then
    kind, flag = 'service.limit_reached', 'lr:' .. slug .. ':' .. svc_max_field
    data = {service = slug, scope = 'service', limit = svc_max}
  elseif warn_percent and svc_count * 100 >= svc_max * warn_percent then
    -- the early warning: integers compared, so 80% of 10 is reached at 8, not 7.99
    kind, flag = 'service.limit_warning', 'lw:' .. slug .. ':' .. svc_max_field
    data = {service = slug, limit = svc_max, limit_warning_percent = warn_percent,
      usage_today = svc_count}
  end
  if kind then
    local entry = emit_daily(usage_key, ARGV[8], KEYS[6], events_maxlen, events, kind, data,
      flag)
    if entry then undo = undo .. ',' .. flag .. '=' .. entry end
  end
end
local receipt = ''
if string.find(events, ',key.delivered,', 1, true) then
  local data = {service = slug, key_id = tonumber(key_id), usage_today = usage_today}
  if app then data.app_id = tonumber(app_id) end
  receipt = emit(KEYS[6], events_maxlen, events, 'key.delivered', data) or ''
end

local quota, left = quota_left()
return answer(pick, usage_today, receipt, undo, quota, left)
