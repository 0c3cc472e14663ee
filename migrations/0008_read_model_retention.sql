-- Retention of what the projector keeps (ct_retention, run by the
-- projector): applied event ids, command outcomes and delivered Slack
-- notifications older than CONCERT_PROJECTOR_RETENTION_S are deleted,
-- oldest first, through these indexes (appends at their right edge, so
-- cheap to keep up). Undelivered notifications are never deleted.
CREATE INDEX projected_events_applied_at ON projected_events (applied_at);
CREATE INDEX commands_completed_at ON commands (completed_at);
CREATE INDEX slack_notifications_sent_at ON slack_notifications (sent_at) WHERE sent_at IS NOT NULL;
