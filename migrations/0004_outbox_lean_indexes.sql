-- Every index on outbox costs each accepted command an index insert, and
-- the outbox's write rate is the ingress's throughput. Kept: the primary key,
-- command_id's unique index, and outbox_pending_id (the relay reads PENDING
-- rows in id order).
--
-- outbox_key_unsent was read by no query. outbox_pending_due served the
-- relay's "keys waiting out a backoff" look-up, which concerns only rows
-- that have failed at least once: a new row (attempts = 0) no longer enters
-- an index for it.
DROP INDEX outbox_key_unsent;
DROP INDEX outbox_pending_due;
CREATE INDEX outbox_backoff ON outbox (next_attempt_at, id) WHERE status = 'PENDING' AND attempts > 0;
