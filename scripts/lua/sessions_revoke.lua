-- sessions_revoke: end every console session of a tenant (admin token reissued, tenant gone).
-- KEYS[1] {t:T}:sessions (set of h)
-- ARGV[1] '{t:T}:session:' (the prefix of each session's key; same hash tag, same slot)
-- returns how many sessions were still live
local ended = 0
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  ended = ended + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
return ended
