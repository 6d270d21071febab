-- field_cas: replace or remove one hash field only if it still holds what the caller read
-- (rewrap's compare-and-set: a key edited or deleted meanwhile is left alone, never
-- resurrected; the key ring's fp:<fingerprint> forgotten only if no write sealed meanwhile).
-- KEYS[1] hash   ARGV[1] field   ARGV[2] expected value   ARGV[3] new value (absent: remove)
-- returns 1 replaced (or removed), 0 the field changed or vanished (nothing written)
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
if ARGV[3] == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
