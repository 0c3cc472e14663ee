-- The queue token read as functions (issue 19). Sent as one statement, the
-- read was planned at every call: seven probes of queue_tokens cost
-- Postgres ~0.5-0.8 ms to plan and ~0.3 ms to run, and fans waiting for
-- admission read their token once or twice each. In a PL/pgSQL function a
-- session plans each statement once and keeps the plan.
--
-- Each function plans with plan_cache_mode = force_generic_plan and
-- enable_seqscan = off, and only while it runs (its SET clauses). The
-- second setting is what makes a kept plan safe: a generic plan made while
-- queue_tokens is empty (a fresh system's first seconds, stats saying 0
-- rows) scans the table whole, and kept that way it fell 30 s behind under
-- a cold start's load (docs/decisions.md, the generic-plan incident). With
-- sequential scans priced out every statement here takes its index, which
-- each has; an ANALYZE still replans them.

-- The concert queue's logical "now": its newest activation or its newest
-- waiting token's issue, NULL for a queue with neither. The ingress has no
-- clock of the partition that runs the queue.
CREATE FUNCTION concert_queue_now(p_concert text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    activated bigint;
    waiting bigint;
BEGIN
    SELECT a.activated_ts INTO activated FROM queue_tokens a
     WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL
     ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1;
    SELECT w.issued_ts INTO waiting FROM queue_tokens w
     WHERE w.concert_id = p_concert AND w.status = 'WAITING'
     ORDER BY w.seq DESC LIMIT 1;
    RETURN greatest(activated, waiting);
END
$$;

-- The concert's admissions in the p_window_ms before p_now. Admission is
-- FIFO by seq and every seq is admitted once, so they are the seqs after
-- the last one admitted before the window, up to the latest admitted: index
-- probes (migration 0009), not a count.
CREATE FUNCTION concert_queue_admitted(p_concert text, p_now bigint, p_window_ms bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    latest bigint;
    earlier bigint;
BEGIN
    SELECT a.seq INTO latest FROM queue_tokens a
     WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL
     ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1;
    IF latest IS NULL THEN
        RETURN 0;
    END IF;
    SELECT a.seq INTO earlier FROM queue_tokens a
     WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL AND a.activated_ts <= p_now - p_window_ms
     ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1;
    IF earlier IS NULL THEN -- all admitted within the window: count from the first
        SELECT a.seq - 1 INTO earlier FROM queue_tokens a
         WHERE a.concert_id = p_concert AND a.activated_ts IS NOT NULL
         ORDER BY a.activated_ts, a.seq LIMIT 1;
    END IF;
    RETURN latest - earlier;
END
$$;

-- A token as its read answers it: no row for an unknown token. The
-- position (1 at the head) is set for a WAITING token only: its seq minus
-- the queue head's, plus one. as_of_ts is the queue's "now", at least the
-- token's own issue.
CREATE FUNCTION concert_token_read(p_token text, p_window_ms bigint)
RETURNS TABLE (status text, concert_id text, user_id text, seq bigint, issued_ts bigint, activated_ts bigint,
               active_until bigint, queue_position bigint, admitted bigint, as_of_ts bigint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    t queue_tokens;
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
        SELECT t.seq - min(w.seq) + 1 INTO queue_position FROM queue_tokens w
         WHERE w.concert_id = t.concert_id AND w.status = 'WAITING';
    END IF;
    as_of_ts := greatest(t.issued_ts, concert_queue_now(t.concert_id));
    admitted := concert_queue_admitted(t.concert_id, as_of_ts, p_window_ms);
    RETURN NEXT;
END
$$;
