-- Alerts in sets (issue 19). The projector confirms a batch's reservations
-- in one statement, but concert_alert_enqueue inserts one row a call, so
-- that statement ran an INSERT per confirmation: most of its time at 512
-- users. concert_alerts_enqueue inserts an array of alerts of one kind in
-- one statement; concert_alert_enqueue is now a set of one, so the table's
-- insert is still written once. A text whose dedup_key is taken (by an
-- earlier row or an earlier element) is not written again; NULL keys never
-- conflict. Returns the new rows' ids.
CREATE FUNCTION concert_alerts_enqueue(kind text, texts text[], dedup_keys text[]) RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
    INSERT INTO slack_notifications (kind, text, dedup_key)
    SELECT $1, a.t, a.d FROM unnest($2, $3) AS a(t, d)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
$$;

CREATE OR REPLACE FUNCTION concert_alert_enqueue(kind text, text text, dedup_key text DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT concert_alerts_enqueue($1, ARRAY[$2], ARRAY[$3])
$$;
