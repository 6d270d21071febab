-- service_update: change a service's policy, limits and limit warning, compare-and-set on the
-- policy the caller validated against (key_ttl_minutes is required or refused depending on the
-- policy).
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] policy the caller read   ARGV[2..] field/value pairs among policy, max, ttl_ms, warn,
-- rpm
-- returns 1 updated, 0 no such service, -1 the policy changed since the caller read it (re-read, retry)
local current = redis.call('HGET', KEYS[1], 'policy')
if not current then
  return 0
end
if current ~= ARGV[1] then
  return -1
end
local new_policy = current
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'policy' then
    new_policy = ARGV[i + 1]
  end
end
if new_policy ~= current then
  -- a policy change starts afresh (no current key, every time-policy lifetime unstarted: t:N,
  -- the sweep's marks x:N; a no-active-keys episode ends too; the round_robin position 'rr',
  -- the weighted cycle cw:N, the least_recently_used order 'lseq', lu:N), except for the
  -- manual primary:
  -- it is put aside as 'mcur' when the service leaves manual and put back when it returns, so
  -- switching away and back keeps the admin's choice ('cur' itself is the time policy's key in
  -- use meanwhile)
  if current == 'manual' then
    local primary = redis.call('HGET', KEYS[1], 'cur')
    if primary then
      redis.call('HSET', KEYS[1], 'mcur', primary)
    else
      redis.call('HDEL', KEYS[1], 'mcur')
    end
  end
  local stale = {'cur', 'noact', 'rr', 'lseq'}
  for _, id in ipairs(split_ids(redis.call('HGET', KEYS[1], 'ids'))) do
    stale[#stale + 1] = 't:' .. id
    stale[#stale + 1] = 'x:' .. id
    stale[#stale + 1] = 'cw:' .. id
    stale[#stale + 1] = 'lu:' .. id
  end
  redis.call('HDEL', KEYS[1], unpack(stale))
  if new_policy == 'manual' then
    local primary = redis.call('HGET', KEYS[1], 'mcur')
    if primary then
      redis.call('HSET', KEYS[1], 'cur', primary)
      redis.call('HDEL', KEYS[1], 'mcur')
    end
  end
end
return 1
