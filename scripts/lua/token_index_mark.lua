-- token_index_mark: a release's first step. The owner's confirmed entry ("<owner>") becomes a
-- claim of the same owner ("<owner> <ms> <nonce>"), which no other import takes over while
-- the releaser checks whether the owner holds the token again (a re-import raced the
-- release); it is then confirmed back or dropped (token_index_swap.lua). An entry that is
-- anything else (a claim in progress, another owner's) is left alone.
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the owner giving the token up; ARGV[2] a nonce
-- returns the claim written, or false (left alone)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
local written = ARGV[1] .. ' ' .. clock_ms('') .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], written)
return written
