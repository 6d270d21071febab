-- field_cas: replace one hash field only if it still holds what the caller read (rewrap's
-- compare-and-set: a key edited or deleted meanwhile is left alone, never resurrected).
-- KEYS[1] hash   ARGV[1] field   ARGV[2] expected value   ARGV[3] new value
-- returns 1 replaced, 0 the field changed or vanished (nothing written)
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
