-- audit: a management write's audit record, appended by the write's own script, so the record
-- exists if and only if the change happened (rotator/store/scripts/__init__.py load_audited
-- wraps a write script's body between audit_take and audit_finish; audit_append.lua uses
-- audit_append alone for refused attempts and the operator's log).
-- Units: ms since the epoch.

-- append `record` (JSON) to `stream`: entry id <ms>-*, ms = now_ms or the newest entry's ms
-- if that is later (several API hosts' clocks, a test's clock), so the id never goes back;
-- entries older than retention_ms are trimmed exactly (MINID: one write, a few old entries).
-- When `events_key` is given, the record is also an `event_type` event for a tenant that
-- subscribes to it (its ",type," list in the tenant hash `tenant_key`).
local function audit_append(stream, record, now_ms, retention_ms, events_key, tenant_key,
                            maxlen, event_type)
  local ms = now_ms
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if newest then
    local newest_ms = tonumber(string.match(newest[1], '^(%d+)'))
    if newest_ms > ms then ms = newest_ms end
  end
  local id = redis.call('XADD', stream, 'MINID', now_ms - retention_ms, ms .. '-*', 'r', record)
  if events_key then
    emit(events_key, maxlen, redis.call('HGET', tenant_key, 'events'), event_type, record)
  end
  return id
end

-- the audit arguments the caller appended after the script's own (KEYS: the audit stream,
-- the events stream, the tenant hash; ARGV: record, now_ms, retention_ms, events_maxlen),
-- taken off before the body runs, so the body sees exactly its own KEYS and ARGV
local function audit_take()
  local a = {}
  a.maxlen = table.remove(ARGV)
  a.retention_ms = tonumber(table.remove(ARGV))
  a.now_ms = tonumber(table.remove(ARGV))
  a.record = table.remove(ARGV)
  a.tenant_key = table.remove(KEYS)
  a.events_key = table.remove(KEYS)
  a.stream = table.remove(KEYS)
  return a
end

-- whether a write script's reply says it changed something: every write script answers a
-- positive number (1 written, N added), a text (an entry id) or a table starting 'ok' when
-- it did, and 0, -1, false or another status when it wrote nothing
local function audit_changed(reply)
  local kind = type(reply)
  if kind == 'number' then return reply > 0 end
  if kind == 'string' then return reply ~= '' end
  if kind == 'table' then return reply[1] == 'ok' end
  return false
end

-- the wrapped script's reply: {1 recorded | 0 not, the body's own reply}
local function audit_finish(a, reply)
  if audit_changed(reply) then
    audit_append(a.stream, a.record, a.now_ms, a.retention_ms, a.events_key, a.tenant_key,
      a.maxlen, 'audit.write')
    return {1, reply}
  end
  return {0, reply}
end
