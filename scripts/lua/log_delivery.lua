-- log_delivery: prepend one webhook delivery attempt to a tenant's delivery log, capped.
-- KEYS[1] delivery log      {t:T}:deliveries  (LIST of JSON objects, newest first)
-- KEYS[2] tenant hash       {t:T}:tenant
-- ARGV[1] the entry: a JSON object without "seq", e.g. {"event_id":"evt_…",…}
-- ARGV[2] entries kept (LTRIM 0 keep-1)
-- Each stored entry starts with '{"seq":N,'. N is the head's seq + 1 (1 for an empty log), read
-- and written in one script, so the seqs in the list are contiguous and descending: the entry
-- with seq s sits at index head_seq - s, which is what makes a seq a stable page cursor while
-- new entries arrive.
-- Returns N; false, logging nothing, when the tenant hash is gone (the store flushed, or the
-- tenant deleted while a delivery was in flight): the log it would recreate has no expiry
-- and no tenant left to delete it.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return false
end
local seq = 1
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  local head_seq = tonumber(string.match(head, '^{"seq":(%d+),'))
  if head_seq then seq = head_seq + 1 end
end
local body = string.sub(ARGV[1], 2)
if body ~= '}' then body = ',' .. body end
redis.call('LPUSH', KEYS[1], '{"seq":' .. seq .. body)
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return seq
