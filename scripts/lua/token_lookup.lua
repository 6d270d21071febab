#!lua flags=no-writes
-- token_lookup: whose an imported token is (a plain GET, as a script so that the hot path's
-- client routes it to the key's slot on a cluster in one round trip, without a MOVED).
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- returns "<tenant>" | "<tenant>:<app id>" | false (unknown)
return redis.call('GET', KEYS[1])
