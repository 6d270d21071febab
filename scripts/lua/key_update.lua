-- key_update: change a provider key's label, active flag or daily limit.
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] key id N   ARGV[2..] field/value pairs among l:N, a:N (1|0), m:N ('' = none)
-- returns 1 updated, 0 no such key
local n = ARGV[1]
if redis.call('HEXISTS', KEYS[1], 'l:' .. n) == 0 then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'a:' .. n and ARGV[i + 1] == '1' then
    -- an enabled key ends a no-active-keys episode
    redis.call('HDEL', KEYS[1], 'noact')
  end
end
return 1
