-- app_update: write fields of an app hash only if the app exists, so a PATCH or a token reissue
-- racing a DELETE never brings back part of a deleted app (and its token with it).
-- KEYS[1] {t:T}:app:<id>
-- ARGV[1 ..] field, value, field, value, ...
-- returns 1 written, 0 no such app (nothing written)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
