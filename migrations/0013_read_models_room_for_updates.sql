-- Room for updates in the read models that every journey updates again and
-- again (issue 19): a seat, a reservation and a payment are each written
-- two or three times within a second of their insert, a balance at every
-- charge and debit. Packed full (fillfactor 100), most of those updates
-- found no room in the row's page and wrote a new version elsewhere plus
-- an entry in every index: at 512 users only 16-32% of them were HOT
-- (pg_stat_user_tables), where the outbox, at fillfactor 50 since 0006,
-- had 99.5%. None of these updates changes an indexed column, so with
-- room in the page they stay in it and touch no index. queue_tokens is
-- left alone: its updates change indexed columns (status, activated_ts),
-- so they are never HOT. New pages only; existing ones fill as they did.
ALTER TABLE seats SET (fillfactor = 70);
ALTER TABLE reservations SET (fillfactor = 70);
ALTER TABLE payments SET (fillfactor = 70);
ALTER TABLE balances SET (fillfactor = 70);
