-- Token reads in sets (issue 19). With 2,048 fans and 1,000 admitted at
-- once, the other half wait and read their token twice (found WAITING,
-- then again once admitted), one statement a read: the reads took ~10% of
-- the host's CPU, the largest share of any one kind of statement. Fans are
-- admitted in batches (one projector transaction admits many), so their
-- re-reads arrive together; the ingress now sends the reads waiting at the
-- same moment as one statement, and the figures they share (the queue's
-- head, its "now" and its admissions in the window) are looked up once per
-- concert instead of once per token.
--
-- Same planning as 0014: generic plans kept per connection, sequential
-- scans priced out while they are made.

-- The tokens of p_tokens that exist, each as concert_token_read answered it:
-- the position (1 at the head) is set for a WAITING token only, its seq
-- minus the queue head's plus one; as_of_ts is the queue's "now", at least
-- the token's own issue. One row per distinct token, in no given order.
-- (STABLE: every probe sees the caller's snapshot, so the figures shared by
-- the tokens of a concert are the same for each of them.)
CREATE FUNCTION concert_token_read_many(p_tokens text[], p_window_ms bigint)
RETURNS TABLE (token text, status text, concert_id text, user_id text, seq bigint, issued_ts bigint,
               activated_ts bigint, active_until bigint, queue_position bigint, admitted bigint, as_of_ts bigint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    t queue_tokens;
    cur text;              -- the concert the figures below belong to
    head bigint;           -- its first waiting seq, once a WAITING token asked
    head_known boolean;
    base_now bigint;       -- its "now" with no floor, and the admissions then
    base_admitted bigint;
BEGIN
    FOR t IN SELECT q.* FROM queue_tokens q WHERE q.token = ANY(p_tokens) ORDER BY q.concert_id LOOP
        IF cur IS DISTINCT FROM t.concert_id THEN
            cur := t.concert_id;
            head_known := false;
            SELECT c.now_ts, c.admitted INTO base_now, base_admitted
              FROM concert_queue_clock(cur, NULL, p_window_ms) c;
        END IF;
        token := t.token;
        status := t.status;
        concert_id := t.concert_id;
        user_id := t.user_id;
        seq := t.seq;
        issued_ts := t.issued_ts;
        activated_ts := t.activated_ts;
        active_until := t.active_until;
        queue_position := NULL;
        IF t.status = 'WAITING' THEN
            IF NOT head_known THEN
                SELECT w.seq INTO head FROM queue_tokens w
                 WHERE w.concert_id = cur AND w.status = 'WAITING'
                 ORDER BY w.seq LIMIT 1;
                head_known := true;
            END IF;
            queue_position := t.seq - head + 1;
        END IF;
        -- The clock's "now" is the greatest of the queue's and the floor, and
        -- its admissions depend on that "now" alone: a token issued at or
        -- before the queue's "now" shares the concert's figures.
        IF base_now IS NOT NULL AND t.issued_ts <= base_now THEN
            as_of_ts := base_now;
            admitted := base_admitted;
        ELSE
            SELECT c.now_ts, c.admitted INTO as_of_ts, admitted
              FROM concert_queue_clock(cur, t.issued_ts, p_window_ms) c;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

DROP FUNCTION concert_token_read(text, bigint);
