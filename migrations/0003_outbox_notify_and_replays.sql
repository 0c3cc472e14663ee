-- The relay sleeps on LISTEN outbox and is woken by any insert, one
-- notification per statement (a group commit of 500 rows wakes it once;
-- Postgres also folds identical notifications of one transaction).
-- Polling stays as the fallback for a notification missed while the relay
-- was reconnecting.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- A repeated request with the same Idempotency-Key gets the first answer
-- byte for byte: the ids the ingress generated (queue token, reservation,
-- payment, concert) are in it, so it cannot be rebuilt from command_id.
ALTER TABLE idempotency_keys ADD COLUMN response text;

-- The relay reads PENDING rows in id order with a LIMIT: this index gives
-- them in that order without walking the (ever growing) SENT history.
CREATE INDEX outbox_pending_id ON outbox (id) WHERE status = 'PENDING';
