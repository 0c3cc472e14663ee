-- Idempotency-Key: a repeated POST with the same key returns the first
-- command's id and writes no second outbox row. The request fingerprint
-- (method, path, body hash) lets a key reused for a different request be
-- refused instead of silently answered with an unrelated command.
CREATE TABLE idempotency_keys (
    key         text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    command_id  uuid NOT NULL REFERENCES outbox (command_id),
    fingerprint text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Slack notifications, outbox-style: written in the same transaction as
-- their cause, delivered (and marked sent) by a sender with retries.
CREATE TABLE slack_notifications (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,
    text            text NOT NULL,
    dedup_key       text UNIQUE,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX slack_notifications_unsent ON slack_notifications (next_attempt_at, id) WHERE sent_at IS NULL;
