-- claim: keep or give up a claim this caller holds: a string key holding the caller's value,
-- which lapses by itself if the caller stops (rotator/store/claims.py).
-- KEYS[1] the claim   ARGV[1] the value the caller set   ARGV[2] ms to keep it (0: give it up)
-- returns 1 while the caller holds it (kept or given up now), 0 when it lapsed or another
-- caller holds it (nothing written)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
