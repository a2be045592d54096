-- A user or broadcast publish (no history) under an idempotency key: the claim and the
-- PUBLISH are one step, so a crash between them cannot leave a claimed key with nothing
-- delivered. The caller stores the result under the key afterwards (SET XX KEEPTTL); a
-- duplicate gets what is stored.
-- KEYS[1] idempotency  the publish's idempotency key
-- ARGV[1] channel      the user's or tenant's channel
-- ARGV[2] frame        the finished frame
-- ARGV[3] window_ms    how long the key is remembered
-- Returns {subscribers reached, 0} or {stored result, 1} for a duplicate.
if not redis.call('SET', KEYS[1], '{}', 'NX', 'PX', ARGV[3]) then
  return {redis.call('GET', KEYS[1]) or '{}', 1}
end
return {redis.call(PUB, ARGV[1], ARGV[2]), 0}
