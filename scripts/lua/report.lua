-- report: a client says what the provider answered when it used a key; by the service's
-- health rules (rotator/domain/health.py states them, docs/rotation.md for users) the key cools
-- down, is disabled, or has its failures counted, atomically with every delivery.
-- Units: times in ms since the epoch; settings in s (the quota reset: minutes after 00:00 UTC).
-- Reads as its steps: clock, read, authenticate, allowlist (next_key.lua's rules: a client may
-- report only on keys of services its token can fetch from), count, decide, answer.
-- KEYS[1] tenant hash   {t:T}:tenant  (read only when the service does not exist)
-- KEYS[2] app hash      {t:T}:app:<id> (when no app token: any name in the slot, unused)
-- KEYS[3] service hash  {t:T}:svc:<slug>
-- KEYS[4] usage hash prefix {t:T}:use:  (today's named from this script's clock, as next_key)
-- KEYS[5] event stream  {t:T}:events
-- ARGV[1] sha256 hex of the token's secret part   ARGV[2] app id ('' = tenant client token)
-- ARGV[3] service slug   ARGV[4] client address, 32 hex digits ('' = unknown)
-- ARGV[5] now_ms ('' = Redis TIME)   ARGV[6] key id   ARGV[7] status (0 = no response)
-- ARGV[8] retry_after s ('' = none)   ARGV[9] error, lower case ('' = none)
-- ARGV[10] the quota errors, ",a,b," (health.QUOTA_ERRORS)
-- ARGV[11..16] the defaults of the settings a service may override (fields h_cd, h_cdmax,
--          h_reset, h_fn, h_fw, h_bc): cooldown s, max cooldown s, quota reset minutes,
--          failure threshold, failure window s, breaker cooldown s
-- ARGV[17] usage hash ttl s   ARGV[18] event stream cap (approximate)
-- Returns {'token'} | {'ip'} | {'service'} | {'key'} (no such key in the service) |
--   {'ok', state ('active' | 'expired' | 'disabled' | 'cooling_down'), cooldown_until_ms
--    ('' = not cooling), now_ms}
-- Per key N it keeps f:N failures in the window that started at fw:N, b:N the breaker's
-- consecutive openings (half-open while > 0 and not cooling), dr:N why a report disabled it,
-- r:N the last report (JSON: status, error, at_ms); the cooldown is its entry in 'cool'.

-- step: clock ---------------------------------------------------------------------------------
local now = clock_ms(ARGV[5])
local slug, app_id, n = ARGV[3], ARGV[2], ARGV[6]
local status = tonumber(ARGV[7])
local maxlen = ARGV[18]

-- step: read ----------------------------------------------------------------------------------
local svc = redis.call('HMGET', KEYS[3], 'policy', '@client', '@allow', '@events', 'cool',
  'l:' .. n, 'a:' .. n, 'f:' .. n, 'fw:' .. n, 'b:' .. n, 't:' .. n, 'ttl_ms',
  'h_cd', 'h_cdmax', 'h_reset', 'h_fn', 'h_fw', 'h_bc', '@demo')
local policy, tenant_token_hash, tenant_allow, events = svc[1], svc[2], svc[3], svc[4]
local demo = svc[19] == '1'
if not policy then
  local t = redis.call('HMGET', KEYS[1], 'client', 'allow')
  tenant_token_hash, tenant_allow = t[1], t[2]
end

-- steps: authenticate, allowlist (the prelude's caller_refused, as next_key.lua) -------------
local app = nil
if app_id ~= '' then
  app = redis.call('HMGET', KEYS[2], 'token', 'allow', 'suspended')
end
local refused = caller_refused(tenant_token_hash, tenant_allow, app, ARGV[1], ARGV[4])
if refused then
  return {refused}
end
if not policy then
  return {'service'}
end
if not svc[6] then
  return {'key'}
end

-- step: count (usage history, by status class: rotator/domain/health.py report_class) --------
local class
if status == 0 then class = 'none'
elseif status >= 200 and status < 300 then class = '2xx'
elseif status == 429 then class = '429'
elseif status >= 500 then class = '5xx'
elseif status >= 400 then class = '4xx'
else class = 'other' end
local usage_key = KEYS[4] .. math.floor(now / 86400000)
if redis.call('HINCRBY', usage_key, 'rp:' .. slug .. ':' .. class, 1) == 1 then
  redis.call('EXPIRE', usage_key, ARGV[17])
end
local err = ARGV[9]
redis.call('HSET', KEYS[3], 'r:' .. n, cjson.encode({status = status,
  error = err ~= '' and err or cjson.null, at_ms = now}))

-- step: decide --------------------------------------------------------------------------------
local function setting(i, default_at) return tonumber(svc[i]) or tonumber(ARGV[default_at]) end
local cooldown_s, max_cooldown_s = setting(13, 11), setting(14, 12)
local reset_min, threshold, window_s, breaker_s =
  setting(15, 13), setting(16, 14), setting(17, 15), setting(18, 16)
local cooling = cooling_table(svc[5]) or {}
local active = svc[7] == '1'
local until_ms = cooling[n]
local is_cooling = until_ms ~= nil and now < until_ms

-- start (or lengthen) the key's cooldown; key.cooling_down once per cooldown, not per report
-- (32 clients reporting the same 429 make one event)
local function cool(to_ms, reason)
  if is_cooling and until_ms >= to_ms then return end
  cooling[n] = to_ms
  store_cooling(KEYS[3], cooling)
  if not is_cooling then
    emit(KEYS[5], maxlen, events, 'key.cooling_down', {service = slug, key_id = tonumber(n),
      reason = reason, status = status, cooldown_until_ms = to_ms})
  end
  until_ms, is_cooling = to_ms, true
end

local quota = err ~= '' and string.find(ARGV[10], ',' .. err .. ',', 1, true)
if not active then
  -- a disabled key stays as it is: a person enables it (and clears what reports left)
elseif demo then
  -- a demo tenant's token is public: its reports are counted, but change no key (else
  -- anyone could disable or cool down every demo key)
elseif class == '2xx' then
  -- a success clears the count and closes a breaker (half-open: this was its probe)
  redis.call('HDEL', KEYS[3], 'f:' .. n, 'fw:' .. n, 'b:' .. n)
elseif quota then
  -- spent for the provider's day: cool until the next reset instant
  local day_ms = 86400000
  local reset_ms = math.floor(now / day_ms) * day_ms + reset_min * 60000
  if reset_ms <= now then reset_ms = reset_ms + day_ms end
  cool(reset_ms, 'quota')
elseif status == 401 or status == 403 then
  -- the provider refused the key itself: out of rotation until a person enables it
  -- (key_update.lua clears dr:N, the failures and any cooldown then); the next delivery's
  -- walk moves a manual or time pointer off it, as for a key a person disabled
  local reason = 'provider answered ' .. status .. (err ~= '' and (': ' .. err) or '')
  redis.call('HSET', KEYS[3], 'a:' .. n, '0', 'dr:' .. n, reason)
  redis.call('HDEL', KEYS[3], 'f:' .. n, 'fw:' .. n, 'b:' .. n)
  if cooling[n] then
    cooling[n] = nil
    store_cooling(KEYS[3], cooling)
  end
  until_ms, is_cooling, active = nil, false, false
  emit(KEYS[5], maxlen, events, 'key.disabled', {service = slug, key_id = tonumber(n),
    reason = reason})
elseif class == '429' then
  local wait_s = tonumber(ARGV[8]) or cooldown_s
  cool(now + math.min(math.max(wait_s, 1), max_cooldown_s) * 1000, 'rate_limited')
elseif (class == '5xx' or class == 'none') and not is_cooling then
  -- circuit breaker: failures counted in a window that starts at the first one; reports of
  -- requests made before a cooldown began are not counted against the key again
  local failures = tonumber(svc[8]) or 0
  local window_from = tonumber(svc[9])
  if not window_from or now >= window_from + window_s * 1000 then
    failures, window_from = 0, now
  end
  failures = failures + 1
  if failures >= threshold then
    -- open: cool for the breaker's cooldown, doubled at each consecutive opening (b:N); then
    -- half-open: the failure count stays one short, in a window that starts when the
    -- cooldown ends, so one more failure soon after re-opens it and a success closes it
    local openings = (tonumber(svc[10]) or 0) + 1
    local wait_s = math.min(breaker_s * 2 ^ (openings - 1), max_cooldown_s)
    cool(now + wait_s * 1000, 'failures')
    redis.call('HSET', KEYS[3], 'f:' .. n, threshold - 1, 'fw:' .. n,
      string.format('%d', until_ms), 'b:' .. n, openings)
  else
    redis.call('HSET', KEYS[3], 'f:' .. n, failures, 'fw:' .. n,
      string.format('%d', window_from))
  end
end

-- step: answer --------------------------------------------------------------------------------
local state = 'active'
-- in rotator/domain/rotation.py's order: disabled, expired (for good), cooling_down, active
if not active then
  state = 'disabled'
elseif policy == 'time' and svc[11] and tonumber(svc[12])
    and now >= tonumber(svc[11]) + tonumber(svc[12]) then
  state = 'expired'
elseif is_cooling then
  state = 'cooling_down'
end
return {'ok', state, is_cooling and string.format('%d', until_ms) or '', now}
