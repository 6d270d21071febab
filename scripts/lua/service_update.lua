-- service_update: change a service's policy, limits and limit warning, compare-and-set on the
-- policy the caller validated against (key_ttl_minutes is required or refused depending on the
-- policy).
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] policy the caller read   ARGV[2..] field/value pairs among policy, max, ttl_ms, warn
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
  -- the time policy's state (its current key 'tcur', entry times t:N, the sweep's marks x:N)
  -- starts afresh: a service that enters the time policy starts from its first key, with
  -- every lifetime unstarted. The manual primary ('cur') is kept, so switching away from
  -- manual and back keeps the admin's choice. A no-active-keys episode ends too: the new
  -- policy reports its own.
  local stale = {'tcur', 'noact'}
  local ids = redis.call('HGET', KEYS[1], 'ids') or ''
  for id in string.gmatch(ids, '[^,]+') do
    stale[#stale + 1] = 't:' .. id
    stale[#stale + 1] = 'x:' .. id
  end
  redis.call('HDEL', KEYS[1], unpack(stale))
end
return 1
