-- tenant_counts: one tenant's row of the operator's list, read on the tenant's slot in one call
-- (the list pipelines one call per tenant, so any number of tenants costs one round trip).
-- KEYS[1] {t:T}:tenant   KEYS[2] {t:T}:services   KEYS[3] {t:T}:apps
-- KEYS[4] {t:T}:use: the usage hashes' prefix: today's is named from this script's clock
--         (same hash tag, same slot; see next_key.lua)
-- ARGV[1] '{t:T}:svc:', the prefix of the tenant's service hashes (same hash tag, same slot)
-- ARGV[2] now_ms ('' = Redis TIME)
-- returns nil when there is no such tenant; else
--   {name, demo (0|1), created_ms, suspended ('1' | ''), services, keys, apps, deliveries today}
--   keys: the provider keys of all its services (each service's `ids`); deliveries today: the
--   `s:<slug>` counters of its current services (a service deleted today no longer counts)
local t = redis.call('HMGET', KEYS[1], 'name', 'demo', 'created_ms', 'suspended')
if not t[1] then
  return nil
end
local usage_key = KEYS[4] .. math.floor(clock_ms(ARGV[2]) / 86400000)
local slugs = redis.call('SMEMBERS', KEYS[2])
local key_count, deliveries = 0, 0
for _, slug in ipairs(slugs) do
  local ids = redis.call('HGET', ARGV[1] .. slug, 'ids')
  if ids and ids ~= '' then
    local _, commas = string.gsub(ids, ',', '')
    key_count = key_count + commas + 1
  end
  deliveries = deliveries + (tonumber(redis.call('HGET', usage_key, 's:' .. slug)) or 0)
end
return {t[1], t[2] or '0', t[3] or '0', t[4] or '', #slugs, key_count,
  redis.call('SCARD', KEYS[3]), deliveries}
