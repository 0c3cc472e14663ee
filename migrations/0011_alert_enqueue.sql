-- One way into slack_notifications (issue 15): every alert (a confirmed
-- reservation, a FAILED outbox row, a dead letter, a skipped projection, a
-- crash loop) is enqueued through this function, called from inside the
-- statement that records its cause, so the alert commits with it and the
-- table's insert is written once. An alert whose dedup_key is taken is not
-- written again (NULL keys never conflict). Returns the new row's id, NULL
-- for a duplicate, so a caller can count the alerts it wrote.
CREATE FUNCTION concert_alert_enqueue(kind text, text text, dedup_key text DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    INSERT INTO slack_notifications (kind, text, dedup_key) VALUES ($1, $2, $3)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
$$;
