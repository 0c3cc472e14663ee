-- Idempotency keys are scoped to the caller (issue 16): stored as
-- "<user id>/<key>" ("#admin/<key>" for admin writes), so another user's
-- identical key is a different request. User ids are [A-Za-z0-9_-], so
-- the first '/' ends the scope. Keys recorded before are moved into their
-- command's scope, so a client retrying across the upgrade still gets its
-- first answer (their fingerprints are the old 64-bit ones, so a replay of
-- one of those is told it came with another request: 422).
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_key_check;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_key_check CHECK (length(key) BETWEEN 3 AND 321);
UPDATE idempotency_keys k
   SET key = coalesce(o.payload->'data'->>'user_id', '#admin') || '/' || k.key
  FROM outbox o
 WHERE o.command_id = k.command_id;
