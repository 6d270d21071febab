-- token_index_release: remove an imported token's index entry if it still names the owner that
-- gave the token up, confirmed: a claim of the same owner in progress (a re-import racing the
-- release) and a token since imported by another owner keep their entries.
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the owner giving it up: "<tenant>" or "<tenant>:<app id>"
-- returns 1 removed, 0 left alone
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
