-- service_delete: drop a service and its keys (ciphertexts included) in one step.
-- KEYS[1] {t:T}:svc:<slug>   KEYS[2] {t:T}:services (set of slugs)
-- ARGV[1] slug
-- returns 1 deleted, 0 no such service
-- Usage counters keep their s:<slug>/k:<id> fields until their day key expires by itself.
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
