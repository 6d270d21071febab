-- claim: keep, give up or take over a claim whose value the caller knows: a string key
-- holding its holder's value, which lapses by itself if the holder stops
-- (rotator/store/claims.py).
-- KEYS[1] the claim   ARGV[1] the value the caller expects it to hold (its own, or that of
-- a holder it found ended)   ARGV[2] ms to keep it (0: give it up)
-- ARGV[3] (optional) the caller's own value, to hold from now on: a take-over
-- returns 1 when it held ARGV[1] (kept, given up or taken over now), 0 when it lapsed or
-- holds another value (nothing written)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  -- a take-over compares too: of two callers that found one ended holder, one takes it
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
