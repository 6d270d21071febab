#!lua flags=allow-oom
-- signin_attempt: count a console sign-in attempt from one client IP in a fixed window, before
-- its token is checked, or take back the attempt of a sign-in that succeeded, or judge an
-- attempt whose token the caller already found right without counting it.
-- Flagged allow-oom: a full store (maxmemory) must not lock the operator out of the API
-- that would help free it; the counter is a few bytes.
-- KEYS[1] kr:signin_fail:<hex> (the address: IPv4 whole, IPv6 its /64)
-- ARGV[1] window_ms (the counter expires this long after the window's first attempt)
-- ARGV[2] '1' to count an attempt, '-1' to take one back (never below 0, never creating it),
--         '0' to judge a right token's attempt: as if counted, but nothing is written
-- returns {attempts in the window (with '0', this one included),
--          ms until the window ends (0: no window)}
-- Counting first, atomically, is what bounds the guesses: attempts sent at once each get
-- their own count, so no more of them are checked than the window allows. A right token
-- judged with '0' sees every failure counted before it, so the bound holds, and it holds
-- no place in the window while in flight. One script, so the counter can never be left
-- without its expiry (that would lock the address out).
if ARGV[2] == '0' then
  local attempts = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
  return {attempts, math.max(redis.call('PTTL', KEYS[1]), 0)}
end
if ARGV[2] == '-1' then
  local attempts = tonumber(redis.call('GET', KEYS[1]) or '0')
  if attempts <= 0 then
    return {0, 0}
  end
  attempts = redis.call('DECR', KEYS[1])
  return {attempts, math.max(redis.call('PTTL', KEYS[1]), 0)}
end
local attempts = redis.call('INCR', KEYS[1])
local left_ms = redis.call('PTTL', KEYS[1])
if left_ms < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left_ms = tonumber(ARGV[1])
end
return {attempts, left_ms}
