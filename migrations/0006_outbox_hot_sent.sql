-- Marking a row SENT becomes a HOT update: no index may mention a column
-- the relay changes then, so the status-predicated partial indexes go.
-- Each of them made every SENT update write a new tuple elsewhere plus an
-- entry in the primary key and command_id indexes.
--
-- The relay finds new rows from its frontier (outbox_frontier.next_id:
-- every row below it is SENT, FAILED or awaiting a retry) through the
-- primary key, and everything else through retry_at, which is set only
-- while a row is out of the normal flow: a publish failed (the time of the
-- next attempt), the row is parked behind an earlier failing row of its key
-- (the time it was parked), or it is FAILED ('infinity'). A row SENT at the
-- first try never has it, so its update changes no indexed column.
ALTER TABLE outbox ADD COLUMN retry_at timestamptz;
UPDATE outbox SET retry_at = CASE WHEN status = 'FAILED' THEN 'infinity' ELSE next_attempt_at END
    WHERE status = 'FAILED' OR (status = 'PENDING' AND attempts > 0);
ALTER TABLE outbox ADD CONSTRAINT outbox_retry_at_state CHECK (
    (status = 'FAILED') = (coalesce(retry_at, '-infinity') = 'infinity') AND (status <> 'SENT' OR retry_at IS NULL));
CREATE INDEX outbox_retry ON outbox (retry_at, id) WHERE retry_at IS NOT NULL;
DROP INDEX outbox_pending_id;
DROP INDEX outbox_failed;
DROP INDEX outbox_backoff;
-- Room in each page for the SENT version of its rows (new pages only).
ALTER TABLE outbox SET (fillfactor = 50);

CREATE TABLE outbox_frontier (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    next_id bigint NOT NULL
);
INSERT INTO outbox_frontier (next_id)
    SELECT coalesce(min(id), (SELECT coalesce(max(id), 0) + 1 FROM outbox))
    FROM outbox WHERE status = 'PENDING' AND retry_at IS NULL;
