-- delivery_refund: undo one delivery's counting after its key failed to decrypt, atomically, and
-- record key.decrypt_failed. next_key.lua counts before the API process decrypts; a request that
-- then ends in 500 must use up nothing (service, app and key counters) and emit no key.delivered.
-- Units: times in ms since the epoch.
-- KEYS[1] service hash      {t:T}:svc:<slug>   (@events, l:N, t:N)
-- KEYS[2] usage hash        {t:T}:use:<day>    (the day next_key counted in)
-- KEYS[3] event stream      {t:T}:events
-- KEYS[4] request record    {t:T}:rid:<request id>   (no request id: any name in the slot, unused)
-- KEYS[5] withdrawn events  {t:T}:void   (ZSET entry id -> ms withdrawn)
-- ARGV[1] service slug   ARGV[2] key id   ARGV[3] app id ('' = tenant client token)
-- ARGV[4] next_key's receipt: '-' when it answered a retry and counted nothing; else the
--         key.delivered entry id it recorded ('' = none)
-- ARGV[5] next_key's undo ('' usually; items '<flag>=<entry id>' and 't', joined by ',', see
--         its header)
-- ARGV[6] request id ('' = none)
-- ARGV[7] now_ms ('' = Redis TIME)
-- ARGV[8] how long a withdrawn entry id is kept in KEYS[5] (ms): longer than a delivery job
--         waits in the queue before its first attempt
-- ARGV[9] event stream cap (approximate)
-- ARGV[10] usage hash ttl s (only when this script creates it)
-- Returns the key's decrypt failures today (this one included); key.decrypt_failed is recorded
-- at the first of the day only (every failure is logged by the API), so a broken key under load
-- does not flood the stream and push other events out of it.

local now = clock_ms(ARGV[7])
local slug, key_id, app_id = ARGV[1], ARGV[2], ARGV[3]

-- stream ids 'ms-seq': a <= b
local function not_after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as <= bs)
end

-- the highest entry id any consumer group has read (pumps read through the group "webhooks")
local last_read = nil
local function read_up_to()
  if last_read == nil then
    last_read = '0-0'
    local groups = redis.pcall('XINFO', 'GROUPS', KEYS[3])
    if not groups.err then
      for _, group in ipairs(groups) do
        for i = 1, #group, 2 do
          if group[i] == 'last-delivered-id' and not not_after(group[i + 1], last_read) then
            last_read = group[i + 1]
          end
        end
      end
    end
  end
  return last_read
end

-- take an event back: an entry no pump has read is simply deleted (no pump will see it); one a
-- pump has read may already be a queued delivery job, which checks KEYS[5] before it POSTs
-- (workers/deliver.py), so it is never delivered either. Race point: a pump reads the stream
-- between next_key and this script; the group's last-delivered-id tells us, atomically here.
local function withdraw(entry)
  if entry == '' then return end
  redis.call('XDEL', KEYS[3], entry)
  if not_after(entry, read_up_to()) then
    local keep_ms = tonumber(ARGV[8])
    redis.call('ZADD', KEYS[5], now, entry)
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - keep_ms))
    redis.call('PEXPIRE', KEYS[5], keep_ms)
  end
end

if ARGV[4] ~= '-' then
  -- the counters next_key raised; a concurrent delivery may have raised them since, so this is
  -- a decrement, never a write of older values (never below 0: the day may have been wiped)
  local fields = {'k:' .. key_id, 's:' .. slug}
  if app_id ~= '' then fields[3] = 'a:' .. app_id end
  local counts = redis.call('HMGET', KEYS[2], unpack(fields))
  for i = 1, #fields do
    local left = (tonumber(counts[i]) or 0) - 1
    if left > 0 then
      redis.call('HSET', KEYS[2], fields[i], left)
    else
      redis.call('HDEL', KEYS[2], fields[i])
    end
  end
  if ARGV[6] ~= '' then
    redis.call('DEL', KEYS[4])  -- a proxy's retry of this request is a new delivery
  end
  withdraw(ARGV[4])
  -- a failed delivery that set a once-a-day flag (a limit or the limit warning reached, the
  -- current key's own limit making deliveries move on) recorded its event: the count is below
  -- again, so the flag is cleared and the event taken back; the request that really gets there
  -- records it. Requests answered 429 between the two scripts saw the limit reached (the quota
  -- was held while decrypting).
  for _, item in ipairs(split_ids(ARGV[5])) do
    if item == 't' then
      -- a time-policy key's validity starts at its first delivery, and this was none
      redis.call('HDEL', KEYS[1], 't:' .. key_id)
    else
      local flag, entry = string.match(item, '^(.+)=(%d+%-%d+)$')
      if not flag then
        return redis.error_reply('delivery_refund: unknown undo item ' .. item)
      end
      redis.call('HDEL', KEYS[2], flag)
      withdraw(entry)
    end
  end
end

local failures = redis.call('HINCRBY', KEYS[2], 'df:' .. key_id, 1)
redis.call('HINCRBY', KEYS[2], 'sdf:' .. slug, 1)  -- next_key.lua's usage policy reads df: then
if failures == 1 then
  if redis.call('TTL', KEYS[2]) < 0 then
    redis.call('EXPIRE', KEYS[2], ARGV[10])
  end
  local svc = redis.call('HMGET', KEYS[1], '@events', 'l:' .. key_id)
  emit(KEYS[3], ARGV[9], svc[1], 'key.decrypt_failed',
    {service = slug, key_id = tonumber(key_id), label = svc[2] or ''})
end
return failures
