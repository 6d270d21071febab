-- token_index_release: remove an imported token's index entry if it still names the owner that
-- gave the token up, so a token since imported by another owner keeps its entry.
-- KEYS[1] kr:tok:<sha256 hex of the whole token>: "<owner> <ms claimed>"
-- ARGV[1] the owner giving it up: "<tenant>" or "<tenant>:<app id>"
-- returns 1 removed, 0 absent or another owner's (left alone)
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^%S+') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
