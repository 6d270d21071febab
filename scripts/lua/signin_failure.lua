-- signin_failure: count a failed console sign-in from one client IP in a fixed window.
-- KEYS[1] kr:signin_fail:<ip>
-- ARGV[1] window_ms (the counter expires this long after the window's first failure)
-- returns {failures in the window, ms until the window ends}
-- One script so the counter can never be left without its expiry (a crash between INCR
-- and PEXPIRE would lock the address out for good).
local failures = redis.call('INCR', KEYS[1])
local left_ms = redis.call('PTTL', KEYS[1])
if left_ms < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left_ms = tonumber(ARGV[1])
end
return {failures, left_ms}
