-- audit_append: append one audit record on its own: a refused attempt (nothing changed, so
-- nothing to be atomic with), a write whose change is not a tenant script's (an operator
-- write, acknowledged first), or the copy in the operator's log kr:audit.
-- include: audit
-- KEYS[1] the audit stream ({t:T}:audit or kr:audit)
-- KEYS[2] {t:T}:events, KEYS[3] {t:T}:tenant: only for a tenant's stream (the record is
--         then also an `ARGV[5]` event for a tenant that subscribes to it)
-- ARGV[1] record (JSON)   ARGV[2] now_ms   ARGV[3] retention_ms   ARGV[4] events_maxlen
-- ARGV[5] event type (audit.write | audit.refused)
-- returns the entry id; false when KEYS[3] names a tenant that does not exist (an attempt on
-- an unknown or deleted tenant leaves no key behind: the operator's log has the record)
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 0 then
  return false
end
return audit_append(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[2], KEYS[3],
  ARGV[4], ARGV[5])
