-- tenant_update: write fields of a tenant hash; the ones a delivery reads (client, demo, allow,
-- events) are written into each of the tenant's service hashes too, as '@<field>', so that
-- next_key.lua reads one hash instead of two. One script: no delivery sees them disagree.
-- KEYS[1] {t:T}:tenant   KEYS[2] {t:T}:services (set of slugs)
-- KEYS[3 ..] {t:T}:svc:<slug> for each slug of ARGV[1], in its order
-- ARGV[1] the slugs the caller read from KEYS[2], comma-separated
-- ARGV[2 ..] field, value, field, value, ...
-- returns 1 written; 0 the tenant's services changed since the caller read them (nothing
-- written: read them again and retry)
local given, count = {}, 0
for slug in string.gmatch(ARGV[1], '[^,]+') do
  given[slug], count = true, count + 1
end
local slugs = redis.call('SMEMBERS', KEYS[2])
if #slugs ~= count or #KEYS ~= count + 2 then
  return 0
end
for _, slug in ipairs(slugs) do
  if not given[slug] then return 0 end
end

redis.call('HSET', KEYS[1], unpack(ARGV, 2))
local copies = {}
for i = 2, #ARGV, 2 do
  local f = ARGV[i]
  if f == 'client' or f == 'demo' or f == 'allow' or f == 'events' then
    copies[#copies + 1] = '@' .. f
    copies[#copies + 1] = ARGV[i + 1]
  end
end
if #copies > 0 then
  for k = 3, #KEYS do
    redis.call('HSET', KEYS[k], unpack(copies))
  end
end
return 1
