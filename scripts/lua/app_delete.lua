-- app_delete: drop an app's hash and its id from the tenant's app set, in one step; its token
-- stops working with it (next_key.lua reads the hash on every app-token request).
-- KEYS[1] {t:T}:app:<id>   KEYS[2] {t:T}:apps
-- ARGV[1] the app id
-- returns 1 deleted, 0 no such app
local deleted = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return deleted
