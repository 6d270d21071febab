-- app_create: a new app's hash and its id in the tenant's app set, in one step (so the audit
-- record of the write, appended by this same script, goes with both).
-- KEYS[1] {t:T}:app:<id>   KEYS[2] {t:T}:apps
-- ARGV[1] the app id (from the tenant's counter)   ARGV[2 ..] field, value, field, value, ...
-- returns 1
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
