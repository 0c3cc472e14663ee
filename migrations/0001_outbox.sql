-- The transactional outbox (DESIGN.md section 7): the ingress writes one row
-- per accepted command in the same transaction as anything else it changes;
-- the relay publishes PENDING rows to Kafka in id order per partition key.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    command_id      uuid NOT NULL UNIQUE,
    topic           text NOT NULL,
    partition_key   text NOT NULL,
    type            text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempts        int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    kafka_partition int,
    kafka_offset    bigint,
    CHECK ((status = 'SENT') = (sent_at IS NOT NULL))
);

-- The relay's work queue: due PENDING rows in id order.
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at, id) WHERE status = 'PENDING';
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'FAILED';
-- Per-key ordering: the oldest unsent row of a key blocks the later ones.
CREATE INDEX outbox_key_unsent ON outbox (partition_key, id) WHERE status <> 'SENT';
