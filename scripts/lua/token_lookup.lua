#!lua flags=no-writes
-- token_lookup: whose an imported token is (a GET, as a script so that the hot path's client
-- routes it to the key's slot on a cluster in one round trip, without a MOVED).
-- KEYS[1] kr:tok:<sha256 hex of the whole token>: "<owner> <ms claimed>"
-- returns "<tenant>" | "<tenant>:<app id>" | false (unknown)
local entry = redis.call('GET', KEYS[1])
return entry and string.match(entry, '^%S+')
