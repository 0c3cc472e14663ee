-- Outbox retention (ct_outbox_prune_slice) deletes old SENT rows together
-- with the Idempotency-Keys that name them. Both that delete and the
-- foreign key's check on every deleted outbox row look keys up by
-- command_id: without this index each was a scan of the whole table.
CREATE INDEX idempotency_keys_command ON idempotency_keys (command_id);
