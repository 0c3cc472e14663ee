-- Read models, materialised by `concert projector` from concert.events and
-- wallet.events (DESIGN.md section 8) and read by the ingress's GET
-- endpoints. Times named *_ts, hold_until and active_until are the
-- partitions' logical milliseconds (the events' ts), not Postgres clocks.
-- Ids are text: they come from Kafka records, and a read model must take
-- whatever a processor wrote.

-- Where the projector is: the next offset to read per partition, written in
-- the same transaction as the batch it follows.
CREATE TABLE projector_offsets (
    topic       text NOT NULL,
    partition   int  NOT NULL CHECK (partition >= 0),
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Event ids applied already (a redelivered event is ignored).
CREATE TABLE projected_events (
    id         text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Command outcomes: one row per command, from its terminal event.
-- ACCEPTED / PUBLISHED are answered from the outbox until this row exists.
CREATE TABLE commands (
    command_id   text PRIMARY KEY,
    type         text NOT NULL,          -- the terminal event's type
    status       text NOT NULL CHECK (status IN ('SUCCEEDED', 'REJECTED')),
    reason       text,                   -- a ct_reason name when REJECTED
    result       jsonb NOT NULL,         -- the terminal event's data
    event_id     text NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE concerts (
    concert_id     text PRIMARY KEY,
    title          text NOT NULL,
    max_active     int NOT NULL,
    active_ttl_ms  bigint NOT NULL,
    hold_ttl_ms    bigint NOT NULL,
    schedule_count int NOT NULL,
    created_ts     bigint NOT NULL
);

CREATE TABLE schedules (
    concert_id  text NOT NULL,
    schedule_id text NOT NULL,
    starts_at   bigint NOT NULL,
    seats       int NOT NULL CHECK (seats >= 0),
    price       bigint NOT NULL CHECK (price >= 0),
    PRIMARY KEY (concert_id, schedule_id)
);

-- Only seats that are not AVAILABLE have a row: the seat map is
-- generate_series(1, seats) left-joined to it.
CREATE TABLE seats (
    concert_id     text NOT NULL,
    schedule_id    text NOT NULL,
    seat_no        int NOT NULL CHECK (seat_no >= 1),
    status         text NOT NULL CHECK (status IN ('HELD', 'PAYMENT_PENDING', 'SOLD')),
    reservation_id text NOT NULL,
    user_id        text NOT NULL,
    hold_until     bigint,
    PRIMARY KEY (concert_id, schedule_id, seat_no)
);

CREATE TABLE queue_tokens (
    token        text PRIMARY KEY,
    concert_id   text NOT NULL,
    user_id      text NOT NULL,
    seq          bigint NOT NULL,
    status       text NOT NULL CHECK (status IN ('WAITING', 'ACTIVE', 'EXPIRED', 'DONE')),
    issued_ts    bigint NOT NULL,
    activated_ts bigint,
    active_until bigint,
    ended_ts     bigint
);
-- Position in the queue: WAITING tokens of the concert ahead by seq.
CREATE INDEX queue_tokens_waiting ON queue_tokens (concert_id, seq) WHERE status = 'WAITING';
-- Admission rate: activations of the concert in a recent window.
CREATE INDEX queue_tokens_activated ON queue_tokens (concert_id, activated_ts) WHERE activated_ts IS NOT NULL;

CREATE TABLE reservations (
    reservation_id text PRIMARY KEY,
    concert_id     text NOT NULL,
    schedule_id    text NOT NULL,
    seat_no        int NOT NULL,
    user_id        text NOT NULL,
    token          text NOT NULL,
    status         text NOT NULL CHECK (status IN ('HELD', 'PAYMENT_PENDING', 'CONFIRMED', 'EXPIRED')),
    price          bigint NOT NULL,
    hold_until     bigint NOT NULL,
    payment_id     text,
    held_ts        bigint NOT NULL,
    updated_ts     bigint NOT NULL
);
CREATE INDEX reservations_user ON reservations (user_id, reservation_id);

CREATE TABLE payments (
    payment_id     text PRIMARY KEY,
    reservation_id text NOT NULL,
    user_id        text NOT NULL,
    concert_id     text NOT NULL,
    amount         bigint NOT NULL,
    status         text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason         text,
    updated_ts     bigint NOT NULL
);

-- The balance after the user's latest wallet event (events carry it).
CREATE TABLE balances (
    user_id    text PRIMARY KEY,
    balance    bigint NOT NULL CHECK (balance >= 0),
    updated_ts bigint NOT NULL
);
