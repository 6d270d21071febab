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
--   list    LRANGE 0 -1            stream {entries, XINFO STREAM, {XINFO GROUPS' entry,
--                                          XPENDING summary} per group}
--   another type: no value (the caller refuses to back it up rather than skip it)
-- A stream's entries are the ones not surely delivered: from the oldest entry pending in a
-- consumer group, or after the group's last delivered one (every entry when there is no group).
-- What a pump acknowledged is done; reading the whole stream (capped at 10000 entries by
-- default) would cost ~3 us an entry in this script, blocking the node.
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}

local function id_below(a, b)
  -- stream ids "<ms>-<seq>" compared as numbers (ms since 1970 is far below 2^53: exact)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

local function stream(key)
  local groups = {}
  -- the first entry some group may still need (none: no group, every entry is needed)
  local from_id, from_exclusive = nil, false
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    local pending = redis.call('XPENDING', key, info['name'])
    -- from the oldest pending entry, else from after the last delivered one
    local id, exclusive = pending[2], false
    if pending[1] == 0 then id, exclusive = info['last-delivered-id'], true end
    if from_id == nil or id_below(id, from_id) or (id == from_id and not exclusive) then
      from_id, from_exclusive = id, exclusive
    end
    groups[#groups + 1] = {group, pending}
  end
  local from = '-'
  if from_id then from = (from_exclusive and '(' or '') .. from_id end
  return {redis.call('XRANGE', key, from, '+'), redis.call('XINFO', 'STREAM', key), groups}
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
