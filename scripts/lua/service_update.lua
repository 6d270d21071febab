-- service_update: change a service's policy and limits, compare-and-set on the policy the caller
-- validated against (key_ttl_minutes is required or refused depending on the policy).
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] policy the caller read   ARGV[2..] field/value pairs among policy, max, ttl_ms
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
  -- the old policy's rotation state (current key, entry and expiry times) means nothing to the
  -- new one: start the new policy from a clean slate
  local stale = {'cur'}
  local ids = redis.call('HGET', KEYS[1], 'ids') or ''
  for id in string.gmatch(ids, '[^,]+') do
    stale[#stale + 1] = 't:' .. id
    stale[#stale + 1] = 'x:' .. id
  end
  redis.call('HDEL', KEYS[1], unpack(stale))
end
return 1
