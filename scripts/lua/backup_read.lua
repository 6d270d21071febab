#!lua flags=no-writes
-- backup_read: read the given keys of one tenant in one step, so a backup holds the tenant as
-- it was at one instant, never half-changed. Knows Redis types, not our schema: which keys to
-- read, and what they mean, is rotator/store/backup/snapshot.py's business.
-- KEYS[1..n] keys of one tenant (one hash tag); a key that does not exist is skipped
-- ARGV none
-- returns {now_ms, {name, type, pttl_ms, value}, ...}, one entry per existing key, where
--   pttl_ms is the time to live (-1 = none) and value, by type:
--   string  the value              hash  HGETALL's field, value, ...
--   set     SMEMBERS               zset  member, score, ... (lowest score first)
--   list    LRANGE 0 -1            stream {XRANGE - +, XINFO STREAM, {XINFO GROUPS' entry,
--                                          XPENDING summary} per group}
--   another type: no value (the caller refuses to back it up rather than skip it)
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}

local function stream(key)
  local groups = {}
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
    end
    groups[#groups + 1] = {group, redis.call('XPENDING', key, name)}
  end
  return {redis.call('XRANGE', key, '-', '+'), redis.call('XINFO', 'STREAM', key), groups}
end

local read = {
  string = function(key) return redis.call('GET', key) end,
  hash = function(key) return redis.call('HGETALL', key) end,
  set = function(key) return redis.call('SMEMBERS', key) end,
  zset = function(key) return redis.call('ZRANGE', key, 0, -1, 'WITHSCORES') end,
  list = function(key) return redis.call('LRANGE', key, 0, -1) end,
  stream = stream,
}

for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' then
    local reader = read[kind]
    local value = false
    if reader then value = reader(key) end
    out[#out + 1] = {key, kind, redis.call('PTTL', key), value}
  end
end
return out
