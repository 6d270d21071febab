-- rotate: advance a manual-policy service's primary to the next active key.
-- KEYS[1] tenant hash {t:T}:tenant   KEYS[2] service hash {t:T}:svc:<slug>   KEYS[3] event stream
-- ARGV[1] service slug   ARGV[2] event stream cap (approximate)
-- Returns {'ok', from_key_id, to_key_id} | {'service'} | {'policy', policy} | {'nokeys'}
-- key.rotated is recorded only when the primary actually changes (one active key: no-op).

local svc = redis.call('HMGET', KEYS[2], 'policy', 'ids', 'cur')
if not svc[1] then
  return {'service'}
end
if svc[1] ~= 'manual' then
  return {'policy', svc[1]}
end

local ids = {}
for id in string.gmatch(svc[2] or '', '[^,]+') do ids[#ids + 1] = id end
local n = #ids
local start = 1
for i = 1, n do
  if ids[i] == svc[3] then start = i break end
end
local function active(i) return redis.call('HGET', KEYS[2], 'a:' .. ids[i]) == '1' end

-- the effective primary is what next_key delivers now: the first active key from `cur`
local current = nil
for step = 0, n - 1 do
  local i = (start - 1 + step) % n + 1
  if active(i) then current = i break end
end
if not current then
  return {'nokeys'}
end
local to = ids[current]
for step = 1, n - 1 do
  local i = (current - 1 + step) % n + 1
  if active(i) then to = ids[i] break end
end

local from = ids[current]
redis.call('HSET', KEYS[2], 'cur', to)
if to ~= from then
  local subscribed = redis.call('HGET', KEYS[1], 'events')
  if subscribed and string.find(subscribed, ',key.rotated,', 1, true) then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'type', 'key.rotated',
      'data', cjson.encode({service = ARGV[1], from_key_id = tonumber(from),
        to_key_id = tonumber(to), reason = 'manual'}))
  end
end
return {'ok', from, to}
