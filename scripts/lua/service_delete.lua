-- service_delete: drop a service, its keys (ciphertexts included) and what it counted, in
-- one step, so a service created later with the same slug starts from nothing: no inherited
-- daily count (which its limit would refuse on), reports, limit-event flags or window.
-- KEYS[1] {t:T}:svc:<slug>   KEYS[2] {t:T}:services (set of slugs)
-- KEYS[3] {t:T}:wins:<slug> (its per-minute window)
-- KEYS[4 ..] {t:T}:use:<day>, every day whose usage hash may still exist
-- ARGV[1] slug
-- returns 1 deleted, 0 no such service
-- Per day it drops s:<slug>, sdf:<slug>, rp:<slug>:*, lr:<slug>:*, lw:<slug>:* and its keys' k:, df:, ku:
-- (an app's a:<id> stays: it counts the app's deliveries from every service).
local ids = redis.call('HGET', KEYS[1], 'ids')
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
local slug = ARGV[1]
local exact = {['s:' .. slug] = true, ['sdf:' .. slug] = true}
for _, n in ipairs(split_ids(ids)) do
  exact['k:' .. n], exact['df:' .. n], exact['ku:' .. n] = true, true, true
end
local prefixed = {'rp:' .. slug .. ':', 'lr:' .. slug .. ':', 'lw:' .. slug .. ':'}
for i = 4, #KEYS do
  for _, field in ipairs(redis.call('HKEYS', KEYS[i])) do
    local hit = exact[field]
    for _, prefix in ipairs(prefixed) do
      hit = hit or string.sub(field, 1, #prefix) == prefix
    end
    -- one field per call: a service with thousands of keys would overflow unpack()
    if hit then redis.call('HDEL', KEYS[i], field) end
  end
end
return 1
