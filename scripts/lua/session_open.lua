-- session_open: record a new console session of a tenant, forgetting the ones that expired.
-- KEYS[1] {t:T}:session:<h>   KEYS[2] {t:T}:sessions (set of h)   KEYS[3] {t:T}:tenant
-- ARGV[1] h (sha256 hex of the session secret)   ARGV[2] now_ms   ARGV[3] idle_ms (the
-- session's PEXPIRE)   ARGV[4] max_ms (the absolute limit: the set's PEXPIRE, so it outlives
-- every session in it by at most that)   ARGV[5] '{t:T}:session:' (the prefix of KEYS[1])
-- ARGV[6] the hash of the admin token the sign-in was checked with
-- returns the tenant's live sessions, this one included; -1 when the tenant's admin token
-- is no longer ARGV[6] (reissued since it was checked): no session
-- The token is compared here, not only before: a reissue writes the new hash, then revokes
-- the sessions, so a session opened between the two with the old token would outlive it.
-- The other sessions' keys are named from the set: they share KEYS[1]'s hash tag, so the
-- script still touches one cluster slot.
if redis.call('HGET', KEYS[3], 'admin') ~= ARGV[6] then
  return -1
end
for _, h in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[5] .. h) == 0 then
    redis.call('SREM', KEYS[2], h)
  end
end
redis.call('HSET', KEYS[1], 'created_ms', ARGV[2], 'seen_ms', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return redis.call('SCARD', KEYS[2])
