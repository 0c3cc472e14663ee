-- The token read, probing the queue's head instead of counting it (issue
-- 19). 0014's position was min(seq) over the concert's WAITING tokens,
-- which Postgres ran as a walk of every waiting entry of the partial index
-- (and of the dead ones that admitted tokens leave behind until a vacuum):
-- at 2,048 users, with ~1,000 fans waiting, 92 pages and ~0.5 ms a read, the
-- largest statement time of the whole pipeline. The head is now the first
-- entry in seq order, a LIMIT 1 probe like the queue's other ends.
--
-- The queue's "now" and its admissions in the window also shared a probe
-- (the latest activation, looked up once by concert_queue_now for its time
-- and again by concert_queue_admitted for its seq): concert_queue_clock
-- gives both from one look-up, and the two functions it replaces go.
--
-- Same planning as 0014: generic plans kept per connection, sequential
-- scans priced out while they are made, so a plan made on an empty table
-- is still the index probes.

-- The concert queue's logical "now" (its newest activation or its newest
-- waiting token's issue, and at least p_floor; NULL for a queue with
-- neither and no floor) and its admissions in the p_window_ms before it.
-- Admission is FIFO by seq and every seq is admitted once, so those are the
-- seqs after the last one admitted before the window, up to the latest
-- admitted: index probes (migration 0009), not a count.
CREATE FUNCTION concert_queue_clock(p_concert text, p_floor bigint, p_window_ms bigint,
                                    OUT now_ts bigint, OUT admitted bigint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    latest_ts bigint;
    latest_seq bigint;
    waiting_ts bigint;
    earlier bigint;
BEGIN
    SELECT a.activated_ts, a.seq INTO latest_ts, latest_seq FROM queue_tokens a
     WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL
     ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1;
    SELECT w.issued_ts INTO waiting_ts FROM queue_tokens w
     WHERE w.concert_id = p_concert AND w.status = 'WAITING'
     ORDER BY w.seq DESC LIMIT 1;
    now_ts := greatest(latest_ts, waiting_ts, p_floor);
    admitted := 0;
    IF latest_seq IS NULL THEN
        RETURN;
    END IF;
    SELECT a.seq INTO earlier FROM queue_tokens a
     WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL AND a.activated_ts <= now_ts - p_window_ms
     ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1;
    IF earlier IS NULL THEN -- all admitted within the window: count from the first
        SELECT a.seq - 1 INTO earlier FROM queue_tokens a
         WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL
         ORDER BY a.activated_ts, a.seq LIMIT 1;
    END IF;
    admitted := latest_seq - earlier;
END
$$;

-- A token as its read answers it: no row for an unknown token. The
-- position (1 at the head) is set for a WAITING token only: its seq minus
-- the queue head's, plus one. as_of_ts is the queue's "now", at least the
-- token's own issue. (The function is STABLE: all its probes see the
-- caller's snapshot, in which a WAITING token is at or behind the head.)
CREATE OR REPLACE FUNCTION concert_token_read(p_token text, p_window_ms bigint)
RETURNS TABLE (status text, concert_id text, user_id text, seq bigint, issued_ts bigint, activated_ts bigint,
               active_until bigint, queue_position bigint, admitted bigint, as_of_ts bigint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    t queue_tokens;
    head bigint;
BEGIN
    SELECT * INTO t FROM queue_tokens q WHERE q.token = p_token;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    status := t.status;
    concert_id := t.concert_id;
    user_id := t.user_id;
    seq := t.seq;
    issued_ts := t.issued_ts;
    activated_ts := t.activated_ts;
    active_until := t.active_until;
    IF t.status = 'WAITING' THEN
        SELECT w.seq INTO head FROM queue_tokens w
         WHERE w.concert_id = t.concert_id AND w.status = 'WAITING'
         ORDER BY w.seq LIMIT 1;
        queue_position := t.seq - head + 1;
    END IF;
    SELECT c.now_ts, c.admitted INTO as_of_ts, admitted
      FROM concert_queue_clock(t.concert_id, t.issued_ts, p_window_ms) c;
    RETURN NEXT;
END
$$;

DROP FUNCTION concert_queue_admitted(text, bigint, bigint);
DROP FUNCTION concert_queue_now(text);
