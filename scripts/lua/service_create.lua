-- service_create: create a service unless its slug is taken (the 409 check and the write are one step).
-- KEYS[1] {t:T}:svc:<slug>   KEYS[2] {t:T}:services (set of slugs)   KEYS[3] {t:T}:tenant
-- ARGV[1] slug   ARGV[2] policy   ARGV[3] max daily requests ('' = none)
-- ARGV[4] ttl_ms ('' unless policy time)   ARGV[5] created_ms
-- ARGV[6] limit warning percent ('' = none)   ARGV[7] max requests per minute ('' = none)
-- ARGV[8 ..] field/value pairs of the health settings the request set (h_cd, ...)
-- returns 1 created, 0 the slug exists (nothing written)
-- The tenant's fields a delivery reads are copied in as '@<field>' (see tenant_update.lua).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1],
  'policy', ARGV[2], 'max', ARGV[3], 'ttl_ms', ARGV[4], 'created_ms', ARGV[5], 'warn', ARGV[6],
  'ids', '', 'rpm', ARGV[7])
for i = 8, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
copy_tenant_fields(KEYS[3], {KEYS[1]})
redis.call('SADD', KEYS[2], ARGV[1])
return 1
