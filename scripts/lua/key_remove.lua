-- key_remove: delete a provider key (its ciphertext included) and take it out of rotation.
-- KEYS[1] {t:T}:svc:<slug>
-- ARGV[1] key id N
-- returns 1 removed, 0 no such key
-- When N is the current key ('cur'), 'cur' moves to the key after it in rotation order, as a
-- rotation would (next_key then walks on from there past inactive or expired keys); with no
-- key left, 'cur' is cleared.
local n = ARGV[1]
if redis.call('HEXISTS', KEYS[1], 'l:' .. n) == 0 then
  return 0
end
local kept = {}
local successor = nil
local seen = false
local ids = redis.call('HGET', KEYS[1], 'ids') or ''
for id in string.gmatch(ids, '[^,]+') do
  if id == n then
    seen = true
  else
    kept[#kept + 1] = id
    if seen and not successor then
      successor = id
    end
  end
end
successor = successor or kept[1]
redis.call('HSET', KEYS[1], 'ids', table.concat(kept, ','))
redis.call('HDEL', KEYS[1],
  'l:' .. n, 'c:' .. n, 'a:' .. n, 'm:' .. n, 't:' .. n, 'x:' .. n, 'n:' .. n, 'k:' .. n)
if redis.call('HGET', KEYS[1], 'cur') == n then
  if successor then
    redis.call('HSET', KEYS[1], 'cur', successor)
  else
    redis.call('HDEL', KEYS[1], 'cur')
  end
end
return 1
