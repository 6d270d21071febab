-- event_test: record a webhook.test event in a tenant's stream, whatever types it subscribes.
-- KEYS[1] {t:T}:tenant   KEYS[2] {t:T}:events
-- ARGV[1] data (JSON)   ARGV[2] the stream's approximate cap (MAXLEN ~)
-- returns the stream entry id, or false when the tenant has no webhook (nothing would
-- deliver the event: the pump reads only tenants with one)
if (redis.call('HGET', KEYS[1], 'wh_url') or '') == '' then
  return false
end
-- ',webhook.test,': recorded whatever the tenant subscribes to
return emit(KEYS[2], ARGV[2], ',webhook.test,', 'webhook.test', ARGV[1])
