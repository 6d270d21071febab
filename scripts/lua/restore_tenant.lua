-- restore_tenant: replace one tenant's keys by a backup's, in one step, so a crash during a
-- restore leaves each tenant whole (as it was, or as in the file) and running it again gives
-- the same result. Knows Redis types, not our schema (rotator/store/backup/load.py).
-- KEYS[1..n] every key of the tenant (one hash tag): its current keys, all deleted first,
--            and the file's
-- ARGV the file's keys one after the other, each as: index into KEYS, type, expiry (unix ms,
--   '' = none), item count c, then c items:
--   string  value                   hash  field, value, ...      set  member, ...
--   zset    score, member, ...      list  value, ... (head first)
--   stream  last id, max deleted id, entries added, entry count, then per entry: id, field
--           count f, f items (field, value, ...); then group count, per group: name, start id
--           (deliveries resume after the start id)
-- returns the number of keys written
local CHUNK = 1000  -- items per command: unpack() has a limit (LUAI_MAXCSTACK, 8000)
local KINDS = {string = true, hash = true, set = true, zset = true, list = true, stream = true}

-- first the whole ARGV is checked, so a malformed call writes nothing (a script is not
-- rolled back: an error after the first write would leave the tenant half-restored)
local plan = {}
local at = 1
while at <= #ARGV do
  local index, kind, count = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 3])
  if not index or not KEYS[index] or not KINDS[kind] or not count or count < 0
      or at + 3 + count > #ARGV then
    return redis.error_reply('restore_tenant: malformed arguments at ' .. at)
  end
  plan[#plan + 1] = {KEYS[index], kind, ARGV[at + 2], at + 4, at + 3 + count}
  at = at + 4 + count
end

for _, key in ipairs(KEYS) do
  redis.call('DEL', key)
end

local function chunked(command, key, first, last)
  -- `first`..`last` sent in chunks of CHUNK items (an even number: pairs stay whole)
  local i = first
  while i <= last do
    local j = math.min(i + CHUNK - 1, last)
    redis.call(command, key, unpack(ARGV, i, j))
    i = j + 1
  end
end

local function stream(key, first)
  local last_id, max_deleted, added, count = ARGV[first], ARGV[first + 1], ARGV[first + 2],
    tonumber(ARGV[first + 3])
  local i = first + 4
  if count == 0 then
    -- an empty stream (a group created with MKSTREAM, or every entry deleted) still exists
    redis.call('XGROUP', 'CREATE', key, 'restore', '0', 'MKSTREAM')
    redis.call('XGROUP', 'DESTROY', key, 'restore')
  end
  for _ = 1, count do
    local fields = tonumber(ARGV[i + 1])
    redis.call('XADD', key, ARGV[i], unpack(ARGV, i + 2, i + 1 + fields))
    i = i + 2 + fields
  end
  -- the stream's counters as they were: an id handed out (then deleted) is not reused
  redis.call('XSETID', key, last_id, 'ENTRIESADDED', added, 'MAXDELETEDID', max_deleted)
  local groups = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, groups do
    redis.call('XGROUP', 'CREATE', key, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end

local write = {
  string = function(key, first) redis.call('SET', key, ARGV[first]) end,
  hash = function(key, first, last) chunked('HSET', key, first, last) end,
  set = function(key, first, last) chunked('SADD', key, first, last) end,
  zset = function(key, first, last) chunked('ZADD', key, first, last) end,
  list = function(key, first, last) chunked('RPUSH', key, first, last) end,
  stream = stream,
}

for _, step in ipairs(plan) do
  local key, kind, expires_at, first, last = unpack(step)
  write[kind](key, first, last)
  if expires_at ~= '' then
    redis.call('PEXPIREAT', key, expires_at)
  end
end
return #plan
