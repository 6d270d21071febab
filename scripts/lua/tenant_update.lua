-- tenant_update: write fields of a tenant hash, then copy the four a delivery reads (client,
-- demo, allow, events) from it into each of the tenant's service hashes, as '@<field>', so
-- that next_key.lua reads one hash instead of two. One script: no delivery sees them disagree,
-- and every call leaves every service with all four copies, whichever fields it wrote.
-- Suspension: while `suspended` is '1' the tenant's `client` is '' and the token's hash waits in
-- `client_held`; every reader of `client` (these copies, service_create.lua, next_key.lua)
-- then refuses the tenant's client and app tokens without knowing about suspension. This script
-- keeps that true after every write: a client token issued while suspended is held too, and
-- resuming ('0') puts the held hash back.
-- KEYS[1] {t:T}:tenant   KEYS[2] {t:T}:services (set of slugs)
-- KEYS[3 ..] {t:T}:svc:<slug> for each slug of ARGV[1], in its order
-- ARGV[1] the slugs the caller read from KEYS[2], comma-separated
-- ARGV[2], ARGV[3] a field set only if the tenant has none (HSETNX; '' = none), its value
-- ARGV[4 ..] field, value, field, value, ...
-- returns -1: no such tenant (deleted; nothing written); 0: the tenant's services changed since
-- the caller read them (nothing written: read them again and retry); 1 written; 2 written, and
-- ARGV[2] was set by this call
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local given, count = {}, 0
for _, slug in ipairs(split_ids(ARGV[1])) do
  given[slug], count = true, count + 1
end
local slugs = redis.call('SMEMBERS', KEYS[2])
if #slugs ~= count or #KEYS ~= count + 2 then
  return 0
end
for _, slug in ipairs(slugs) do
  if not given[slug] then return 0 end
end

if #ARGV >= 4 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
local set_absent = ARGV[2] ~= '' and redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 1

local s = redis.call('HMGET', KEYS[1], 'suspended', 'client', 'client_held')
if s[1] == '1' then
  if s[2] and s[2] ~= '' then
    redis.call('HSET', KEYS[1], 'client_held', s[2], 'client', '')
  end
elseif s[3] then
  if not s[2] or s[2] == '' then
    redis.call('HSET', KEYS[1], 'client', s[3])
  end
  redis.call('HDEL', KEYS[1], 'client_held')
end

copy_tenant_fields(KEYS[1], {unpack(KEYS, 3)})
return set_absent and 2 or 1
