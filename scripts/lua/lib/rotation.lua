-- lib/rotation: the current key of a manual or time service, read as next_key.lua reads it, for
-- the management scripts that change what is current (scripts that say `-- include: rotation`
-- get this file prepended when loaded, after the prelude; rotator/store/scripts/__init__.py).
-- next_key.lua keeps its own walk (select_in_order: it reads counters and limits too, and a
-- table per key would cost the hot path); rotator/domain/rotation.py states the same rules
-- for listings.
-- A key is usable when available (the prelude's key_available: active, a:N = '1', and not
-- cooling down) and, under the time policy, not expired: t:N (when it entered rotation, ms)
-- unset, or now < t:N + ttl_ms. The current key is the first usable key
-- walking the rotation order ('ids') from the pointer 'cur' (the manual primary, or the time
-- policy's key in use), wrapping; from the first key when 'cur' names no key of the service.
-- The usage, round_robin, weighted and least_recently_used policies have none (next_key.lua
-- selects by them; their state: 'rr', cw:N, 'lseq' and lu:N).

-- the weighted policy's cycle starts again: every key's current weight (cw:N) back to 0. Any
-- change to which keys take part or to their weights does this (key_add, key_update,
-- key_remove), so the sequence after it is the one a fresh service with these keys would
-- deliver; a key skipped at a limit keeps its cw, as nginx keeps a down peer's
local function restart_weighted(svc_key, ids)
  if #ids == 0 then return end
  local fields = {}
  for i, id in ipairs(ids) do fields[i] = 'cw:' .. id end
  redis.call('HDEL', svc_key, unpack(fields))
end

local HAS_CURRENT = {manual = true, time = true}

-- the service's rotation as of `now`; nil when the service does not exist
local function read_rotation(svc_key, now)
  local s = redis.call('HMGET', svc_key, 'policy', 'ttl_ms', 'ids', 'cur', '@events', 'cool')
  if not s[1] then return nil end
  local r = {key = svc_key, policy = s[1], ttl_ms = tonumber(s[2]) or math.huge, ids = {},
    active = {}, entered = {}, events = s[5], now = now, cooling = cooling_table(s[6])}
  if HAS_CURRENT[r.policy] then
    r.pointer_field, r.pointer = 'cur', s[4] or nil
  end
  local fields = {}
  r.ids = split_ids(s[3])
  for _, id in ipairs(r.ids) do
    fields[#fields + 1] = 'a:' .. id
    fields[#fields + 1] = 't:' .. id
  end
  if #fields > 0 then
    local state = redis.call('HMGET', svc_key, unpack(fields))
    for i, id in ipairs(r.ids) do
      r.active[id] = state[2 * i - 1] == '1'
      r.entered[id] = tonumber(state[2 * i])
    end
  end
  return r
end

-- the rotation of the service holding key `id`, as of the clock argument ('' = Redis TIME),
-- and the id of its current key; nil when the service has no such key
local current_key
local function rotation_with_key(svc_key, id, now_arg)
  if redis.call('HEXISTS', svc_key, 'l:' .. id) == 0 then return nil end
  local r = read_rotation(svc_key, clock_ms(now_arg))
  return r, current_key(r)
end

-- whether key `id`'s lifetime has ended (time policy only)
local function lifetime_ended(r, id)
  local t0 = r.entered[id]
  return r.policy == 'time' and t0 ~= nil and r.now >= t0 + r.ttl_ms
end

local function usable(r, id)
  return key_available(r.active[id] and '1' or '0', r.cooling, id, r.now)
    and not lifetime_ended(r, id)
end

-- the first usable id walking from position `start` (1-based; wraps), skipping `skip` steps
local function first_usable(r, start, skip)
  local n = #r.ids
  for step = skip, n - 1 do
    local id = r.ids[(start - 1 + step) % n + 1]
    if usable(r, id) then return id end
  end
  return nil
end

local function position(r, id)
  for i = 1, #r.ids do
    if r.ids[i] == id then return i end
  end
  return nil
end

-- the id of the current key (nil: usage policy, or no usable key)
current_key = function(r)
  if not r.pointer_field then return nil end
  return first_usable(r, position(r, r.pointer) or 1, 0)
end

-- the usable key after `id` in rotation order, never `id` itself (nil: none)
local function next_after(r, id)
  local i = position(r, id)
  return i and first_usable(r, i, 1)
end

-- record key.rotated if the tenant subscribes to it (@events: the tenant's copy)
local emit_rotated

-- make the policy's pointer name the current key, before a change that would otherwise let
-- the walk pick another one (enabling or moving a key): such changes never change which key
-- is current. Under the time policy a pointer left on an expired key (no delivery since it
-- expired) moves on as next_key.lua would move it, and records the same key.rotated (reason
-- 'expired'). Returns the current key's id (nil: none usable).
local function pin_current(r, stream_key, maxlen, slug)
  local current = current_key(r)
  if not current or current == r.pointer then return current end
  redis.call('HSET', r.key, r.pointer_field, current)
  -- only a pointer whose key's lifetime ended reports 'expired': one left on a disabled key
  -- (nothing else was usable when it was disabled) moves on without an event of its own
  if r.pointer and lifetime_ended(r, r.pointer) then
    emit_rotated(r, stream_key, maxlen, slug, r.pointer, current, 'expired')
  end
  r.pointer = current
  return current
end

emit_rotated = function(r, stream_key, maxlen, slug, from, to, reason)
  emit(stream_key, maxlen, r.events, 'key.rotated', {service = slug,
    from_key_id = tonumber(from), to_key_id = tonumber(to), reason = reason})
end
