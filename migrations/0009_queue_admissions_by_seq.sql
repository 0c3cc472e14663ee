-- Admission is FIFO by seq and every seq is admitted exactly once, so the
-- activations in a window are the seqs between the last activation before
-- it and the last one in it: two index probes instead of walking every
-- activation of a hot concert's last minute. seq in the index makes the
-- probe's "last" exact among activations of the same millisecond.
CREATE INDEX queue_tokens_activated_seq ON queue_tokens (concert_id, activated_ts, seq) WHERE activated_ts IS NOT NULL;
DROP INDEX queue_tokens_activated;
