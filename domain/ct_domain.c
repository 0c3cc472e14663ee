/*
 * ct_domain: the concert and wallet state machines. See ct_domain.h for the
 * contract and domain/README.md for the rules, the key layout and the
 * outputs of every command.
 *
 * Shape of every handler: read and check everything (returning a rejection
 * at the first failed check, in the documented order of precedence), then
 * write. Reads go to the record's overlay first (ct_effects_int.h), then to
 * the port, so a handler sees what the deadlines before it wrote.
 */
#include "ct_domain.h"

#include <string.h>

#include "ct_effects_int.h"
#include "ct_state.h"

typedef struct ctx {
    const ct_kv_port *port;
    ct_effects *fx;
    ct_error *err;
    const ct_cmd *cmd;
    int64_t now_ms;
    bool readvance; /* a deadline at or before now_ms was (re)inserted */
    /* Every deadline before this time has fired and was deleted: the
     * deadline scan starts here instead of at the index's first key, so it
     * never walks the store's tombstones of fired deadlines (which made the
     * scan, and so each record, cost O(deadlines fired so far)). */
    int64_t floor_ms;
} ctx;

#define TRY(x)                  \
    do {                        \
        if ((x) < 0) return -1; \
    } while (0)

static int corrupt(ctx *c, const char *what, const uint8_t *k, size_t kn) {
    CT_ERR(c->err, CT_ERR_FATAL, "state: corrupt %s", what);
    ct_error_detail(c->err, "key %.*s", (int)kn, (const char *)k);
    return -1;
}

/* ---- state access through the overlay --------------------------------- */

/* 1 found (value copied to v), 0 absent, -1 error. */
static int st_get(ctx *c, const uint8_t *k, size_t kn, uint8_t *v, size_t *vn) {
    const uint8_t *ov;
    size_t on;
    int r = ct_fx_lookup(c->fx, k, kn, &ov, &on);
    if (r == 1) {
        memcpy(v, ov, on);
        *vn = on;
        return 1;
    }
    if (r == 0) return 0;
    return c->port->get(c->port->ud, k, kn, v, CT_VALUE_BYTES_MAX, vn, c->err);
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int r = n ? memcmp(a, b, n) : 0;
    if (r) return r;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* The first key >= from with the prefix, merging the overlay over the port.
 * key must hold CT_KEY_BYTES_MAX bytes, v CT_VALUE_BYTES_MAX. */
static int st_seek(ctx *c, const uint8_t *prefix, size_t pn, const uint8_t *from, size_t fn, uint8_t *key, size_t *kn,
                   uint8_t *v, size_t *vn) {
    uint8_t cur[CT_KEY_BYTES_MAX + 1];
    size_t cn = fn;
    memcpy(cur, from, fn);
    const ct_effects *fx = c->fx;
    for (;;) {
        size_t pkn = 0, pvn = 0;
        int pr = c->port->seek(c->port->ud, prefix, pn, cur, cn, key, CT_KEY_BYTES_MAX, &pkn, v, CT_VALUE_BYTES_MAX,
                               &pvn, c->err);
        TRY(pr);
        bool skip = false; /* the port's key is deleted in the overlay */
        /* Walk the overlay from cur up to the port's key. */
        for (size_t i = ct_fx_lower_bound(fx, cur, cn); i < fx->ent_len; i++) {
            const ct_fx_entry *e = &fx->ent[i];
            const uint8_t *ok = fx->arena + e->key_off;
            if (e->key_len < pn || memcmp(ok, prefix, pn) != 0) break; /* past the prefix */
            int cmp = pr ? key_cmp(ok, e->key_len, key, pkn) : -1;
            if (cmp > 0) break; /* the port's key comes first */
            if (!e->is_delete) {
                memcpy(key, ok, e->key_len);
                *kn = e->key_len;
                memcpy(v, fx->arena + e->val_off, e->val_len);
                *vn = e->val_len;
                return 1;
            }
            if (cmp == 0) { /* look again past it */
                memcpy(cur, ok, e->key_len);
                cur[e->key_len] = 0;
                cn = e->key_len + 1u;
                skip = true;
                break;
            }
        }
        if (skip) continue;
        if (!pr) return 0;
        *kn = pkn;
        *vn = pvn;
        return 1;
    }
}

static int st_put(ctx *c, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
    return ct_fx_put(c->fx, k, kn, v, vn, c->err);
}
static int st_del(ctx *c, const uint8_t *k, size_t kn) { return ct_fx_del(c->fx, k, kn, c->err); }

/* load_X: 1 found (decoded), 0 absent, -1 error; store_X: 0 or -1. */
#define DEF_LOAD(name)                                                              \
    static int load_##name(ctx *c, const uint8_t *k, size_t kn, ct_st_##name *x) {  \
        uint8_t v[CT_VALUE_BYTES_MAX];                                              \
        size_t vn = 0;                                                              \
        int r = st_get(c, k, kn, v, &vn);                                           \
        if (r != 1) return r;                                                       \
        if (ct_val_##name##_decode(v, vn, x) != 0) return corrupt(c, #name, k, kn); \
        return 1;                                                                   \
    }
#define DEF_STORE(name)                                                                   \
    static int store_##name(ctx *c, const uint8_t *k, size_t kn, const ct_st_##name *x) { \
        uint8_t v[CT_VALUE_BYTES_MAX];                                                    \
        return st_put(c, k, kn, v, ct_val_##name##_encode(v, x));                         \
    }
DEF_LOAD(concert)
DEF_LOAD(queue)
DEF_LOAD(schedule)
DEF_LOAD(token)
DEF_LOAD(reservation)
DEF_LOAD(payment)
DEF_STORE(concert)
DEF_STORE(queue)
DEF_STORE(schedule)
DEF_STORE(seat)
DEF_STORE(token)
DEF_STORE(reservation)
DEF_STORE(payment)
DEF_STORE(debit)

static int load_i64(ctx *c, const uint8_t *k, size_t kn, int64_t *x) {
    uint8_t v[CT_VALUE_BYTES_MAX];
    size_t vn = 0;
    int r = st_get(c, k, kn, v, &vn);
    if (r != 1) return r;
    if (ct_val_i64_decode(v, vn, x) != 0) return corrupt(c, "integer", k, kn);
    return 1;
}
static int store_i64(ctx *c, const uint8_t *k, size_t kn, int64_t x) {
    uint8_t v[16];
    return st_put(c, k, kn, v, ct_val_i64_encode(v, x));
}

/* ---- outputs ---------------------------------------------------------- */

/* An output; whether it is its command's outcome is the catalogue's word. */
static ct_out *emit(ctx *c, ct_out_type t, ct_topic topic, const ct_id *key, const ct_id *command_id) {
    ct_out *o = ct_fx_out(c->fx, c->err);
    if (!o) return NULL;
    o->type = t;
    o->topic = topic;
    o->terminal = ct_out_type_outcome(t) != CT_OUTCOME_NONE;
    o->ts_ms = c->now_ms;
    o->key = *key;
    o->command_id = *command_id;
    return o;
}

/* The command's terminal rejection, carrying the command's ids. */
static int reject(ctx *c, ct_reason reason) {
    const ct_cmd *m = c->cmd;
    ct_topic topic =
        ct_cmd_type_role(m->type) == CT_ROLE_WALLET ? CT_TOPIC_ID_WALLET_EVENTS : CT_TOPIC_ID_CONCERT_EVENTS;
    ct_out *o = emit(c, CT_OUT_COMMAND_REJECTED, topic, &m->key, &m->command_id);
    if (!o) return -1;
    o->rejected_type = m->type;
    o->reason = reason;
    /* The command's fields a CommandRejected repeats (its ids, a seat, an
     * amount), found through the catalogue. */
    for (const ct_field *f = ct_cmd_fields(m->type); f->name; f++) {
        ptrdiff_t slot = ct_out_rejected_slot(f);
        if (slot < 0) continue;
        size_t n = f->kind == CT_FIELD_ID    ? sizeof(ct_id)
                   : f->kind == CT_FIELD_U32 ? sizeof(uint32_t)
                                             : sizeof(int64_t);
        memcpy((char *)o + slot, (const char *)m + f->off, n);
    }
    return 0;
}

/* ---- deadlines, admission -------------------------------------------- */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int put_deadline(ctx *c, int64_t at, ct_deadline_kind kind, const ct_id *id) {
    uint8_t k[CT_KEY_BYTES_MAX], v[4];
    size_t kn = ct_key_deadline(k, at, kind, id);
    if (at <= c->now_ms) c->readvance = true;
    if (at < c->floor_ms) c->floor_ms = at;
    return st_put(c, k, kn, v, ct_val_empty_encode(v));
}

/* Deadline keys are deleted only when they fire, never when what they
 * guard ends early (a paid hold, a token DONE): such a key stays until its
 * time and then fires as nothing. A deleted key stays in RocksDB as a
 * tombstone until compaction, and the scan for the next deadline starts at
 * the clock: tombstones of early-ended deadlines lie ahead of it, and every
 * record's scan walked all of them (thousands after a few thousand
 * payments: most of the processor's CPU). Fired keys lie behind the clock,
 * where the scan never looks. */

/* Admits queue heads while the concert has free slots, at now_ms. Writes
 * the queue counters. */
static int admit(ctx *c, const ct_id *concert_id, const ct_st_concert *cc, ct_st_queue *q) {
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn, vn;
    while (q->active_count < cc->max_active && q->last_admitted_seq + 1 < q->next_seq) {
        uint64_t seq = q->last_admitted_seq + 1;
        kn = ct_key_waiting(k, concert_id, seq);
        int r = st_get(c, k, kn, v, &vn);
        TRY(r);
        ct_id tid;
        if (r == 0 || ct_val_id_decode(v, vn, &tid) != 0) return corrupt(c, "waiting entry", k, kn);
        TRY(st_del(c, k, kn));
        uint8_t tk[CT_KEY_BYTES_MAX];
        size_t tkn = ct_key_token(tk, &tid);
        ct_st_token t;
        r = load_token(c, tk, tkn, &t);
        TRY(r);
        if (r == 0 || t.status != CT_TOKEN_WAITING || t.seq != seq) return corrupt(c, "waiting token", tk, tkn);
        t.status = CT_TOKEN_ACTIVE;
        t.activated_at_ms = c->now_ms;
        t.active_until_ms = c->now_ms + cc->active_ttl_ms;
        TRY(store_token(c, tk, tkn, &t));
        TRY(put_deadline(c, t.active_until_ms, CT_DEADLINE_TOKEN, &tid));
        q->active_count++;
        q->last_admitted_seq = seq;
        ct_out *o = emit(c, CT_OUT_TOKEN_ACTIVATED, CT_TOPIC_ID_CONCERT_EVENTS, concert_id, &t.command_id);
        if (!o) return -1;
        o->token = tid;
        o->user_id = t.user_id;
        o->concert_id = *concert_id;
        o->seq = seq;
        o->token_status = CT_TOKEN_ACTIVE;
        o->until_ms = t.active_until_ms;
    }
    kn = ct_key_queue(k, concert_id);
    return store_queue(c, k, kn, q);
}

/* Loads a concert's configuration and queue counters (which must exist). */
static int load_concert_queue(ctx *c, const ct_id *concert_id, ct_st_concert *cc, ct_st_queue *q) {
    uint8_t k[CT_KEY_BYTES_MAX];
    size_t kn = ct_key_concert(k, concert_id);
    int r = load_concert(c, k, kn, cc);
    TRY(r);
    if (r == 0) return corrupt(c, "missing concert", k, kn);
    kn = ct_key_queue(k, concert_id);
    r = load_queue(c, k, kn, q);
    TRY(r);
    if (r == 0) return corrupt(c, "missing queue", k, kn);
    return 0;
}

/* Takes the token out of ACTIVE (to EXPIRED or DONE) and frees its slot. */
static int end_active_token(ctx *c, const ct_id *tid, ct_st_token *t, ct_token_status to, ct_out_type ev,
                            const uint8_t *tk, size_t tkn) {
    ct_st_concert cc;
    ct_st_queue q;
    TRY(load_concert_queue(c, &t->concert_id, &cc, &q));
    if (q.active_count == 0) return corrupt(c, "active count", tk, tkn);
    t->status = (uint8_t)to;
    t->ended_at_ms = c->now_ms;
    TRY(store_token(c, tk, tkn, t));
    q.active_count--;
    ct_out *o = emit(c, ev, CT_TOPIC_ID_CONCERT_EVENTS, &t->concert_id, &t->command_id);
    if (!o) return -1;
    o->token = *tid;
    o->user_id = t->user_id;
    o->concert_id = t->concert_id;
    o->seq = t->seq;
    o->token_status = to;
    return admit(c, &t->concert_id, &cc, &q);
}

static int expire_token(ctx *c, const ct_id *tid, int64_t at) {
    uint8_t tk[CT_KEY_BYTES_MAX];
    size_t tkn = ct_key_token(tk, tid);
    ct_st_token t;
    int r = load_token(c, tk, tkn, &t);
    TRY(r);
    if (r == 0) return corrupt(c, "token deadline", tk, tkn);
    /* A token that finished (DONE) keeps its deadline key, which fires as
     * nothing: see the deadline index's comment at del_deadline's place. */
    if (t.status == CT_TOKEN_DONE) return 0;
    if (t.status != CT_TOKEN_ACTIVE || t.active_until_ms != at) return corrupt(c, "token deadline", tk, tkn);
    return end_active_token(c, tid, &t, CT_TOKEN_EXPIRED, CT_OUT_TOKEN_EXPIRED, tk, tkn);
}

/* Frees a held seat: seat AVAILABLE, the user's count down one. */
static int release_seat(ctx *c, const ct_st_reservation *res) {
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn = ct_key_seat(k, &res->concert_id, &res->schedule_id, res->seat_no), vn;
    TRY(st_del(c, k, kn));
    kn = ct_key_user_seats(k, &res->concert_id, &res->schedule_id, &res->user_id);
    int r = st_get(c, k, kn, v, &vn);
    TRY(r);
    uint8_t n = 0;
    if (r == 0 || ct_val_u8_decode(v, vn, &n) != 0 || n == 0) return corrupt(c, "user seat count", k, kn);
    if (n == 1) return st_del(c, k, kn);
    return st_put(c, k, kn, v, ct_val_u8_encode(v, (uint8_t)(n - 1)));
}

static int set_res_status(ctx *c, ct_st_reservation *res, ct_res_status to, const uint8_t *rk, size_t rkn) {
    if (!ct_reservation_transition_valid((ct_res_status)res->status, to))
        return corrupt(c, "reservation transition", rk, rkn);
    res->status = (uint8_t)to;
    return 0;
}

static int expire_hold(ctx *c, const ct_id *rid, int64_t at) {
    uint8_t rk[CT_KEY_BYTES_MAX];
    size_t rkn = ct_key_reservation(rk, rid);
    ct_st_reservation res;
    int r = load_reservation(c, rk, rkn, &res);
    TRY(r);
    if (r == 0 || res.hold_until_ms != at) return corrupt(c, "hold deadline", rk, rkn);
    /* Paid or being paid: the hold no longer expires. A failed payment puts
     * the deadline back (and it fires then if it has passed). */
    if (res.status == CT_RES_PAYMENT_PENDING || res.status == CT_RES_CONFIRMED) return 0;
    TRY(set_res_status(c, &res, CT_RES_EXPIRED, rk, rkn));
    TRY(store_reservation(c, rk, rkn, &res));
    TRY(release_seat(c, &res));
    /* Counted against the token: CT_EXPIRED_HOLDS_PER_TOKEN_MAX throttles. */
    uint8_t hk[CT_KEY_BYTES_MAX], hv[CT_VALUE_BYTES_MAX];
    size_t hkn = ct_key_expired_holds(hk, &res.token), hvn;
    uint8_t expired = 0;
    TRY(r = st_get(c, hk, hkn, hv, &hvn));
    if (r == 1 && ct_val_u8_decode(hv, hvn, &expired) != 0) return corrupt(c, "expired holds", hk, hkn);
    if (expired < UINT8_MAX) TRY(st_put(c, hk, hkn, hv, ct_val_u8_encode(hv, (uint8_t)(expired + 1))));
    ct_out *o = emit(c, CT_OUT_SEAT_HOLD_EXPIRED, CT_TOPIC_ID_CONCERT_EVENTS, &res.concert_id, &res.command_id);
    if (!o) return -1;
    o->reservation_id = *rid;
    o->concert_id = res.concert_id;
    o->schedule_id = res.schedule_id;
    o->seat_no = res.seat_no;
    o->user_id = res.user_id;
    o->token = res.token;
    o->until_ms = res.hold_until_ms;
    return 0;
}

/* Processes every deadline <= to, in key order, each at its own time
 * (never before the clock: a restored hold whose deadline passed fires
 * now). */
static int advance(ctx *c, int64_t to) {
    uint8_t prefix[4], from[CT_KEY_BYTES_MAX + 1], k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t pn = ct_key_deadline_prefix(prefix), kn, vn;
    /* from = "D/" <be64 floor>: at or before every live deadline key. */
    memcpy(from, prefix, pn);
    for (int i = 0; i < 8; i++) from[pn + (size_t)i] = (uint8_t)((uint64_t)c->floor_ms >> (56 - 8 * i));
    size_t fn = pn + 8;
    for (;;) {
        int r = st_seek(c, prefix, pn, from, fn, k, &kn, v, &vn);
        TRY(r);
        if (r == 0) break;
        int64_t at;
        ct_deadline_kind kind;
        ct_id id;
        if (ct_key_deadline_parse(k, kn, &at, &kind, &id) != 0) return corrupt(c, "deadline key", k, kn);
        if (at > to) break;
        c->now_ms = max64(c->now_ms, at);
        TRY(st_del(c, k, kn));
        if (kind == CT_DEADLINE_HOLD)
            TRY(expire_hold(c, &id, at));
        else
            TRY(expire_token(c, &id, at));
        /* Deadlines created meanwhile lie after k (ttl > 0): go on past k. */
        memcpy(from, k, kn);
        from[kn] = 0;
        fn = kn + 1;
    }
    c->now_ms = max64(c->now_ms, to);
    return 0;
}

/* ---- concert commands ------------------------------------------------- */

static int create_concert(ctx *c) {
    const ct_create_concert *x = &c->cmd->u.create_concert;
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn = ct_key_concert(k, &x->concert_id), vn;
    int r = st_get(c, k, kn, v, &vn);
    TRY(r);
    if (r == 1) return reject(c, CT_REASON_DUPLICATE);

    ct_st_concert cc = {.max_active = x->max_active,
                        .active_ttl_ms = x->active_ttl_ms,
                        .hold_ttl_ms = x->hold_ttl_ms,
                        .schedule_count = (uint16_t)x->schedule_count,
                        .title_len = x->title_len};
    memcpy(cc.title, x->title, x->title_len + 1u);
    TRY(store_concert(c, k, kn, &cc));
    ct_st_queue q = {.next_seq = 1};
    kn = ct_key_queue(k, &x->concert_id);
    TRY(store_queue(c, k, kn, &q));
    const ct_cmd *m = c->cmd;
    for (uint32_t i = 0; i < x->schedule_count; i++) {
        const ct_schedule_spec *s = &x->schedules[i];
        ct_st_schedule ss = {.starts_at_ms = s->starts_at_ms, .seats = s->seats, .price_won = s->price_won};
        kn = ct_key_schedule(k, &x->concert_id, &s->schedule_id);
        TRY(store_schedule(c, k, kn, &ss));
        ct_out *o = emit(c, CT_OUT_SCHEDULE_CREATED, CT_TOPIC_ID_CONCERT_EVENTS, &m->key, &m->command_id);
        if (!o) return -1;
        o->concert_id = x->concert_id;
        o->schedule_id = s->schedule_id;
        o->starts_at_ms = s->starts_at_ms;
        o->seats = s->seats;
        o->amount_won = s->price_won;
    }
    ct_out *o = emit(c, CT_OUT_CONCERT_CREATED, CT_TOPIC_ID_CONCERT_EVENTS, &m->key, &m->command_id);
    if (!o) return -1;
    o->concert_id = x->concert_id;
    o->title_len = x->title_len;
    memcpy(o->title, x->title, x->title_len + 1u);
    o->max_active = x->max_active;
    o->active_ttl_ms = x->active_ttl_ms;
    o->hold_ttl_ms = x->hold_ttl_ms;
    o->schedule_count = x->schedule_count;
    return 0;
}

static int issue_token(ctx *c) {
    const ct_issue_token *x = &c->cmd->u.issue_token;
    uint8_t k[CT_KEY_BYTES_MAX], tk[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn = ct_key_concert(k, &x->concert_id), tkn = ct_key_token(tk, &x->token), vn;
    ct_st_concert cc;
    int r = load_concert(c, k, kn, &cc);
    TRY(r);
    if (r == 0) return reject(c, CT_REASON_UNKNOWN_CONCERT);
    r = st_get(c, tk, tkn, v, &vn);
    TRY(r);
    if (r == 1) return reject(c, CT_REASON_DUPLICATE);
    ct_st_queue q;
    kn = ct_key_queue(k, &x->concert_id);
    TRY(r = load_queue(c, k, kn, &q));
    if (r == 0) return corrupt(c, "missing queue", k, kn);
    /* One place in line per user and concert: asking again while a token is
     * WAITING or ACTIVE answers that token, its position kept, and nothing
     * changes (more ids are not more places). */
    uint8_t uk[CT_KEY_BYTES_MAX], lk[CT_KEY_BYTES_MAX];
    size_t ukn = ct_key_user_token(uk, &x->concert_id, &x->user_id);
    TRY(r = st_get(c, uk, ukn, v, &vn));
    if (r == 1) {
        ct_id live;
        ct_st_token lt;
        if (ct_val_id_decode(v, vn, &live) != 0) return corrupt(c, "user token", uk, ukn);
        size_t lkn = ct_key_token(lk, &live);
        TRY(r = load_token(c, lk, lkn, &lt));
        if (r == 0) return corrupt(c, "missing token", lk, lkn);
        if (lt.status == CT_TOKEN_WAITING || lt.status == CT_TOKEN_ACTIVE) {
            ct_out *o = emit(c, CT_OUT_TOKEN_ISSUED, CT_TOPIC_ID_CONCERT_EVENTS, &c->cmd->key, &c->cmd->command_id);
            if (!o) return -1;
            o->token = live;
            o->user_id = x->user_id;
            o->concert_id = x->concert_id;
            o->seq = lt.seq;
            o->position = lt.status == CT_TOKEN_WAITING ? lt.seq - q.last_admitted_seq : 0;
            o->token_status = (ct_token_status)lt.status;
            o->until_ms = lt.active_until_ms;
            return 0;
        }
    }
    TRY(st_put(c, uk, ukn, v, ct_val_id_encode(v, &x->token)));

    ct_st_token t = {.seq = q.next_seq++,
                     .issued_at_ms = c->now_ms,
                     .user_id = x->user_id,
                     .concert_id = x->concert_id,
                     .command_id = c->cmd->command_id};
    uint64_t position = 0;
    if (q.last_admitted_seq + 1 == t.seq && q.active_count < cc.max_active) {
        t.status = CT_TOKEN_ACTIVE; /* nobody waits and a slot is free */
        t.activated_at_ms = c->now_ms;
        t.active_until_ms = c->now_ms + cc.active_ttl_ms;
        q.active_count++;
        q.last_admitted_seq = t.seq;
        TRY(put_deadline(c, t.active_until_ms, CT_DEADLINE_TOKEN, &x->token));
    } else {
        t.status = CT_TOKEN_WAITING;
        position = t.seq - q.last_admitted_seq;
        kn = ct_key_waiting(k, &x->concert_id, t.seq);
        TRY(st_put(c, k, kn, v, ct_val_id_encode(v, &x->token)));
    }
    TRY(store_token(c, tk, tkn, &t));
    kn = ct_key_queue(k, &x->concert_id);
    TRY(store_queue(c, k, kn, &q));
    ct_out *o = emit(c, CT_OUT_TOKEN_ISSUED, CT_TOPIC_ID_CONCERT_EVENTS, &c->cmd->key, &c->cmd->command_id);
    if (!o) return -1;
    o->token = x->token;
    o->user_id = x->user_id;
    o->concert_id = x->concert_id;
    o->seq = t.seq;
    o->position = position;
    o->token_status = (ct_token_status)t.status;
    o->until_ms = t.active_until_ms;
    return 0;
}

static int hold_seat(ctx *c) {
    const ct_hold_seat *x = &c->cmd->u.hold_seat;
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn, vn;
    int r;
    ct_st_concert cc;
    kn = ct_key_concert(k, &x->concert_id);
    TRY(r = load_concert(c, k, kn, &cc));
    if (r == 0) return reject(c, CT_REASON_UNKNOWN_CONCERT);
    uint8_t rk[CT_KEY_BYTES_MAX];
    size_t rkn = ct_key_reservation(rk, &x->reservation_id);
    TRY(r = st_get(c, rk, rkn, v, &vn));
    if (r == 1) return reject(c, CT_REASON_DUPLICATE);
    ct_st_schedule s;
    kn = ct_key_schedule(k, &x->concert_id, &x->schedule_id);
    TRY(r = load_schedule(c, k, kn, &s));
    if (r == 0) return reject(c, CT_REASON_UNKNOWN_SCHEDULE);
    if (x->seat_no < 1 || x->seat_no > s.seats) return reject(c, CT_REASON_INVALID_SEAT);
    ct_st_token t;
    kn = ct_key_token(k, &x->token);
    TRY(r = load_token(c, k, kn, &t));
    if (r == 0) return reject(c, CT_REASON_UNKNOWN_TOKEN);
    if (!ct_id_eq(&t.user_id, &x->user_id) || !ct_id_eq(&t.concert_id, &x->concert_id))
        return reject(c, CT_REASON_TOKEN_MISMATCH);
    if (t.status != CT_TOKEN_ACTIVE) return reject(c, CT_REASON_TOKEN_NOT_ACTIVE);
    uint8_t expired = 0;
    kn = ct_key_expired_holds(k, &x->token);
    TRY(r = st_get(c, k, kn, v, &vn));
    if (r == 1 && ct_val_u8_decode(v, vn, &expired) != 0) return corrupt(c, "expired holds", k, kn);
    if (expired >= CT_EXPIRED_HOLDS_PER_TOKEN_MAX) return reject(c, CT_REASON_HOLD_THROTTLED);
    uint8_t ek[CT_KEY_BYTES_MAX];
    size_t ekn = ct_key_seat(ek, &x->concert_id, &x->schedule_id, x->seat_no);
    TRY(r = st_get(c, ek, ekn, v, &vn));
    if (r == 1) return reject(c, CT_REASON_SEAT_TAKEN);
    uint8_t uk[CT_KEY_BYTES_MAX];
    size_t ukn = ct_key_user_seats(uk, &x->concert_id, &x->schedule_id, &x->user_id);
    uint8_t held = 0;
    TRY(r = st_get(c, uk, ukn, v, &vn));
    if (r == 1 && ct_val_u8_decode(v, vn, &held) != 0) return corrupt(c, "user seat count", uk, ukn);
    if (held >= CT_SEATS_PER_USER_PER_SCHEDULE_MAX) return reject(c, CT_REASON_LIMIT_EXCEEDED);

    ct_st_seat seat = {.status = CT_SEAT_HELD, .reservation_id = x->reservation_id, .user_id = x->user_id};
    TRY(store_seat(c, ek, ekn, &seat));
    TRY(st_put(c, uk, ukn, v, ct_val_u8_encode(v, (uint8_t)(held + 1))));
    ct_st_reservation res = {.status = CT_RES_HELD,
                             .seat_no = x->seat_no,
                             .held_at_ms = c->now_ms,
                             .hold_until_ms = c->now_ms + cc.hold_ttl_ms,
                             .price_won = s.price_won,
                             .concert_id = x->concert_id,
                             .schedule_id = x->schedule_id,
                             .user_id = x->user_id,
                             .token = x->token,
                             .command_id = c->cmd->command_id};
    TRY(store_reservation(c, rk, rkn, &res));
    TRY(put_deadline(c, res.hold_until_ms, CT_DEADLINE_HOLD, &x->reservation_id));
    ct_out *o = emit(c, CT_OUT_SEAT_HELD, CT_TOPIC_ID_CONCERT_EVENTS, &c->cmd->key, &c->cmd->command_id);
    if (!o) return -1;
    o->reservation_id = x->reservation_id;
    o->concert_id = x->concert_id;
    o->schedule_id = x->schedule_id;
    o->seat_no = x->seat_no;
    o->user_id = x->user_id;
    o->token = x->token;
    o->until_ms = res.hold_until_ms;
    o->amount_won = s.price_won;
    return 0;
}

static int request_payment(ctx *c) {
    const ct_request_payment *x = &c->cmd->u.request_payment;
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn, vn;
    int r;
    kn = ct_key_concert(k, &x->concert_id);
    TRY(r = st_get(c, k, kn, v, &vn));
    if (r == 0) return reject(c, CT_REASON_UNKNOWN_CONCERT);
    uint8_t pk[CT_KEY_BYTES_MAX];
    size_t pkn = ct_key_payment(pk, &x->payment_id);
    TRY(r = st_get(c, pk, pkn, v, &vn));
    if (r == 1) return reject(c, CT_REASON_DUPLICATE);
    uint8_t rk[CT_KEY_BYTES_MAX];
    size_t rkn = ct_key_reservation(rk, &x->reservation_id);
    ct_st_reservation res;
    TRY(r = load_reservation(c, rk, rkn, &res));
    if (r == 0 || !ct_id_eq(&res.concert_id, &x->concert_id)) return reject(c, CT_REASON_UNKNOWN_RESERVATION);
    if (!ct_id_eq(&res.user_id, &x->user_id)) return reject(c, CT_REASON_NOT_OWNER);
    if (!ct_id_eq(&res.token, &x->token)) return reject(c, CT_REASON_TOKEN_MISMATCH);
    if (res.status == CT_RES_EXPIRED) return reject(c, CT_REASON_HOLD_EXPIRED);
    if (res.status != CT_RES_HELD) return reject(c, CT_REASON_RESERVATION_NOT_HELD);

    /* PAYMENT_PENDING is exempt from expiry (its deadline key stays and
     * fires as nothing); the time stays in the reservation for a failed
     * payment. */
    TRY(set_res_status(c, &res, CT_RES_PAYMENT_PENDING, rk, rkn));
    res.payment_id = x->payment_id;
    TRY(store_reservation(c, rk, rkn, &res));
    kn = ct_key_seat(k, &res.concert_id, &res.schedule_id, res.seat_no);
    ct_st_seat seat = {.status = CT_SEAT_PAYMENT_PENDING, .reservation_id = x->reservation_id, .user_id = x->user_id};
    TRY(store_seat(c, k, kn, &seat));
    ct_st_payment p = {.status = CT_PAY_PENDING,
                       .amount_won = res.price_won,
                       .reservation_id = x->reservation_id,
                       .user_id = x->user_id,
                       .concert_id = x->concert_id,
                       .command_id = c->cmd->command_id};
    TRY(store_payment(c, pk, pkn, &p));
    const ct_cmd *m = c->cmd;
    ct_out *o = emit(c, CT_OUT_PAYMENT_REQUESTED, CT_TOPIC_ID_CONCERT_EVENTS, &m->key, &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->reservation_id = x->reservation_id;
    o->user_id = x->user_id;
    o->concert_id = x->concert_id;
    o->amount_won = res.price_won;
    o = emit(c, CT_OUT_DEBIT_REQUESTED, CT_TOPIC_ID_WALLET_COMMANDS, &x->user_id, &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->reservation_id = x->reservation_id;
    o->user_id = x->user_id;
    o->concert_id = x->concert_id;
    o->amount_won = res.price_won;
    return 0;
}

/* A settlement for a payment that is not pending: say so, and ask the
 * wallet to give the money back if it says it took some (the wallet checks
 * that against its own debit record). Never dropped. */
static int settlement_not_honoured(ctx *c, ct_reason reason) {
    const ct_payment_settled *x = &c->cmd->u.payment_settled;
    const ct_cmd *m = c->cmd;
    ct_out *o = emit(c, CT_OUT_SETTLEMENT_REJECTED, CT_TOPIC_ID_CONCERT_EVENTS, &m->key, &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->reservation_id = x->reservation_id;
    o->user_id = x->user_id;
    o->amount_won = x->amount_won;
    o->ok = x->ok;
    o->reason = reason;
    if (!x->ok || reason == CT_REASON_DUPLICATE) return 0;
    o = emit(c, CT_OUT_REFUND_REQUESTED, CT_TOPIC_ID_WALLET_COMMANDS, &x->user_id, &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->user_id = x->user_id;
    o->amount_won = x->amount_won;
    o->reason = reason;
    return 0;
}

static int payment_settled(ctx *c) {
    const ct_payment_settled *x = &c->cmd->u.payment_settled;
    uint8_t pk[CT_KEY_BYTES_MAX];
    size_t pkn = ct_key_payment(pk, &x->payment_id);
    ct_st_payment p;
    int r;
    TRY(r = load_payment(c, pk, pkn, &p));
    if (r == 0 || !ct_id_eq(&p.reservation_id, &x->reservation_id) || !ct_id_eq(&p.user_id, &x->user_id) ||
        p.amount_won != x->amount_won || !ct_id_eq(&p.concert_id, &c->cmd->key))
        return settlement_not_honoured(c, CT_REASON_UNKNOWN_PAYMENT);
    /* The wallet decides each payment once, so a second settlement of a
     * succeeded payment is a copy of the one honoured: nothing to refund. */
    if (p.status == CT_PAY_SUCCEEDED) return settlement_not_honoured(c, CT_REASON_DUPLICATE);
    if (p.status != CT_PAY_PENDING) return settlement_not_honoured(c, CT_REASON_PAYMENT_NOT_PENDING);

    uint8_t rk[CT_KEY_BYTES_MAX], ek[CT_KEY_BYTES_MAX];
    size_t rkn = ct_key_reservation(rk, &p.reservation_id);
    ct_st_reservation res;
    TRY(r = load_reservation(c, rk, rkn, &res));
    if (r == 0 || res.status != CT_RES_PAYMENT_PENDING || !ct_id_eq(&res.payment_id, &x->payment_id))
        return corrupt(c, "pending reservation", rk, rkn);
    size_t ekn = ct_key_seat(ek, &res.concert_id, &res.schedule_id, res.seat_no);
    ct_out *o;
    if (x->ok) {
        TRY(set_res_status(c, &res, CT_RES_CONFIRMED, rk, rkn));
        TRY(store_reservation(c, rk, rkn, &res));
        ct_st_seat seat = {.status = CT_SEAT_SOLD, .reservation_id = p.reservation_id, .user_id = res.user_id};
        TRY(store_seat(c, ek, ekn, &seat));
        p.status = CT_PAY_SUCCEEDED;
        TRY(store_payment(c, pk, pkn, &p));
        o = emit(c, CT_OUT_SEAT_SOLD, CT_TOPIC_ID_CONCERT_EVENTS, &res.concert_id, &p.command_id);
        if (!o) return -1;
        o->reservation_id = p.reservation_id;
        o->payment_id = x->payment_id;
        o->concert_id = res.concert_id;
        o->schedule_id = res.schedule_id;
        o->seat_no = res.seat_no;
        o->user_id = res.user_id;
        o->amount_won = p.amount_won;
        o = emit(c, CT_OUT_RESERVATION_CONFIRMED, CT_TOPIC_ID_CONCERT_EVENTS, &res.concert_id, &p.command_id);
        if (!o) return -1;
        o->reservation_id = p.reservation_id;
        o->payment_id = x->payment_id;
        o->concert_id = res.concert_id;
        o->schedule_id = res.schedule_id;
        o->seat_no = res.seat_no;
        o->user_id = res.user_id;
        o->token = res.token;
        o->amount_won = p.amount_won;
        /* The token has done its job: DONE, and its slot goes to the queue. */
        uint8_t tk[CT_KEY_BYTES_MAX];
        size_t tkn = ct_key_token(tk, &res.token);
        ct_st_token t;
        TRY(r = load_token(c, tk, tkn, &t));
        if (r == 0) return corrupt(c, "reservation's token", tk, tkn);
        if (t.status == CT_TOKEN_ACTIVE) /* its deadline key stays and fires as nothing */
            return end_active_token(c, &res.token, &t, CT_TOKEN_DONE, CT_OUT_TOKEN_DONE, tk, tkn);
        if (t.status == CT_TOKEN_EXPIRED) { /* paid after its window: DONE, no slot to free */
            t.status = CT_TOKEN_DONE;
            TRY(store_token(c, tk, tkn, &t));
            o = emit(c, CT_OUT_TOKEN_DONE, CT_TOPIC_ID_CONCERT_EVENTS, &t.concert_id, &t.command_id);
            if (!o) return -1;
            o->token = res.token;
            o->user_id = t.user_id;
            o->concert_id = t.concert_id;
            o->seq = t.seq;
            o->token_status = CT_TOKEN_DONE;
        }
        return 0;
    }
    /* Failed: back to HELD with the original deadline (which may have
     * passed: then it fires right after this record, see readvance). */
    TRY(set_res_status(c, &res, CT_RES_HELD, rk, rkn));
    TRY(store_reservation(c, rk, rkn, &res));
    ct_st_seat seat = {.status = CT_SEAT_HELD, .reservation_id = p.reservation_id, .user_id = res.user_id};
    TRY(store_seat(c, ek, ekn, &seat));
    p.status = CT_PAY_FAILED;
    TRY(store_payment(c, pk, pkn, &p));
    TRY(put_deadline(c, res.hold_until_ms, CT_DEADLINE_HOLD, &p.reservation_id));
    o = emit(c, CT_OUT_PAYMENT_FAILED, CT_TOPIC_ID_CONCERT_EVENTS, &res.concert_id, &p.command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->reservation_id = p.reservation_id;
    o->concert_id = res.concert_id;
    o->user_id = res.user_id;
    o->amount_won = p.amount_won;
    o->reason = x->reason;
    o->until_ms = res.hold_until_ms;
    return 0;
}

static int load_clock(ctx *c, int64_t *clock) {
    uint8_t k[16];
    size_t kn = ct_key_clock(k);
    int r = load_i64(c, k, kn, clock);
    TRY(r);
    if (r == 0) *clock = 0;
    return 0;
}

static int store_clock(ctx *c, int64_t old, int64_t now) {
    if (now == old) return 0;
    uint8_t k[16];
    return store_i64(c, k, ct_key_clock(k), now);
}

static int begin(const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err, ct_role role, ctx *c) {
    if (ct_cmd_validate(cmd, err)) return -1;
    if (ct_cmd_type_role(cmd->type) != role) {
        CT_ERR(err, CT_ERR_PERMANENT, "record type %s is not for the %s processor", ct_cmd_type_name(cmd->type),
               role == CT_ROLE_CONCERT ? "concert" : "wallet");
        return -1;
    }
    ct_fx_reset(fx, cmd->id);
    *c = (ctx){.port = port, .fx = fx, .err = err, .cmd = cmd};
    return 0;
}

int ct_concert_apply(const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err) {
    ctx c;
    TRY(begin(port, cmd, fx, err, CT_ROLE_CONCERT, &c));
    int64_t clock;
    TRY(load_clock(&c, &clock));
    c.now_ms = clock;
    c.floor_ms = clock;
    int64_t now = max64(clock, cmd->ts_ms);
    TRY(advance(&c, now));
    switch (cmd->type) {
    case CT_CMD_CREATE_CONCERT: TRY(create_concert(&c)); break;
    case CT_CMD_ISSUE_TOKEN: TRY(issue_token(&c)); break;
    case CT_CMD_HOLD_SEAT: TRY(hold_seat(&c)); break;
    case CT_CMD_REQUEST_PAYMENT: TRY(request_payment(&c)); break;
    case CT_CMD_PAYMENT_SETTLED: TRY(payment_settled(&c)); break;
    case CT_CMD_TICK:
        break; /* time only */
    /* Every other type is the wallet's, excluded by begin(); listed so
     * that a new type in the catalogue is a compile error here until it
     * says which role handles it. */
    case CT_CMD_CHARGE_BALANCE:
    case CT_CMD_DEBIT_REQUESTED:
    case CT_CMD_REFUND_REQUESTED:
    case CT_CMD_NONE:
    case CT_CMD_TYPE_COUNT_: break;
    }
    if (c.readvance) TRY(advance(&c, now));
    TRY(store_clock(&c, clock, now));
    fx->clock_ms = now;
    return 0;
}

/* ---- wallet commands -------------------------------------------------- */

static int load_balance(ctx *c, const ct_id *user, uint8_t *k, size_t *kn, int64_t *bal) {
    *kn = ct_key_wallet(k, user);
    int r = load_i64(c, k, *kn, bal);
    TRY(r);
    if (r == 0) *bal = 0;
    if (*bal < 0 || *bal > CT_BALANCE_WON_MAX) return corrupt(c, "balance", k, *kn);
    return 0;
}

static int charge_balance(ctx *c) {
    const ct_charge_balance *x = &c->cmd->u.charge_balance;
    uint8_t k[CT_KEY_BYTES_MAX];
    size_t kn;
    int64_t bal;
    TRY(load_balance(c, &x->user_id, k, &kn, &bal));
    if (bal > CT_BALANCE_WON_MAX - x->amount_won) return reject(c, CT_REASON_BALANCE_LIMIT);
    bal += x->amount_won;
    TRY(store_i64(c, k, kn, bal));
    ct_out *o = emit(c, CT_OUT_BALANCE_CHARGED, CT_TOPIC_ID_WALLET_EVENTS, &x->user_id, &c->cmd->command_id);
    if (!o) return -1;
    o->user_id = x->user_id;
    o->amount_won = x->amount_won;
    o->balance_won = bal;
    return 0;
}

static int debit_requested(ctx *c) {
    const ct_debit_requested *x = &c->cmd->u.debit_requested;
    const ct_cmd *m = c->cmd;
    uint8_t k[CT_KEY_BYTES_MAX], xk[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn, xkn = ct_key_debit(xk, &x->payment_id), vn;
    int64_t bal;
    int r;
    TRY(load_balance(c, &x->user_id, k, &kn, &bal));
    TRY(r = st_get(c, xk, xkn, v, &vn));
    ct_out *o;
    if (r == 1) { /* decided already; a second settlement would refund money never taken twice */
        o = emit(c, CT_OUT_DEBIT_REJECTED, CT_TOPIC_ID_WALLET_EVENTS, &x->user_id, &m->command_id);
        if (!o) return -1;
        o->terminal = false; /* the first decision was the payment's outcome */
        o->payment_id = x->payment_id;
        o->reservation_id = x->reservation_id;
        o->user_id = x->user_id;
        o->concert_id = x->concert_id;
        o->amount_won = x->amount_won;
        o->balance_won = bal;
        o->reason = CT_REASON_DUPLICATE;
        return 0;
    }
    bool ok = bal >= x->amount_won;
    if (ok) {
        bal -= x->amount_won;
        TRY(store_i64(c, k, kn, bal));
    }
    ct_st_debit d = {.ok = ok, .amount_won = x->amount_won, .user_id = x->user_id};
    TRY(store_debit(c, xk, xkn, &d));
    o = emit(c, ok ? CT_OUT_BALANCE_DEBITED : CT_OUT_DEBIT_REJECTED, CT_TOPIC_ID_WALLET_EVENTS, &x->user_id,
             &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->reservation_id = x->reservation_id;
    o->user_id = x->user_id;
    o->concert_id = x->concert_id;
    o->amount_won = x->amount_won;
    o->balance_won = bal;
    o->reason = ok ? CT_REASON_NONE : CT_REASON_INSUFFICIENT_BALANCE;
    o = emit(c, CT_OUT_PAYMENT_SETTLED, CT_TOPIC_ID_CONCERT_COMMANDS, &x->concert_id, &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->reservation_id = x->reservation_id;
    o->user_id = x->user_id;
    o->amount_won = x->amount_won;
    o->ok = ok;
    o->reason = ok ? CT_REASON_NONE : CT_REASON_INSUFFICIENT_BALANCE;
    return 0;
}

/* Credits back a debit the concert side could not honour. Only a debit
 * this wallet made (same payment, user and amount) is refunded, and only
 * once, so no refund can create money. */
static int refund_requested(ctx *c) {
    const ct_refund_requested *x = &c->cmd->u.refund_requested;
    const ct_cmd *m = c->cmd;
    uint8_t k[CT_KEY_BYTES_MAX], xk[CT_KEY_BYTES_MAX], fk[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn, xkn = ct_key_debit(xk, &x->payment_id), fkn = ct_key_refund(fk, &x->payment_id), vn;
    int64_t bal;
    int r;
    TRY(load_balance(c, &x->user_id, k, &kn, &bal));
    ct_st_debit d;
    TRY(r = st_get(c, xk, xkn, v, &vn));
    if (r == 1 && ct_val_debit_decode(v, vn, &d) != 0) return corrupt(c, "debit", xk, xkn);
    ct_reason why = CT_REASON_NONE;
    if (r == 0 || !d.ok || !ct_id_eq(&d.user_id, &x->user_id) || d.amount_won != x->amount_won) {
        why = CT_REASON_UNKNOWN_PAYMENT;
    } else {
        TRY(r = st_get(c, fk, fkn, v, &vn));
        if (r == 1)
            why = CT_REASON_DUPLICATE;
        else if (bal > CT_BALANCE_WON_MAX - x->amount_won)
            why = CT_REASON_BALANCE_LIMIT; /* kept as an event for an operator: never silently lost */
    }
    if (why == CT_REASON_NONE) {
        bal += x->amount_won;
        TRY(store_i64(c, k, kn, bal));
        TRY(store_i64(c, fk, fkn, x->amount_won));
    }
    ct_out *o = emit(c, why ? CT_OUT_REFUND_REJECTED : CT_OUT_BALANCE_REFUNDED, CT_TOPIC_ID_WALLET_EVENTS, &x->user_id,
                     &m->command_id);
    if (!o) return -1;
    o->payment_id = x->payment_id;
    o->user_id = x->user_id;
    o->amount_won = x->amount_won;
    o->balance_won = bal;
    o->reason = why ? why : x->reason;
    return 0;
}

int ct_wallet_apply(const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err) {
    ctx c;
    TRY(begin(port, cmd, fx, err, CT_ROLE_WALLET, &c));
    int64_t clock;
    TRY(load_clock(&c, &clock));
    int64_t now = max64(clock, cmd->ts_ms);
    c.now_ms = now;
    switch (cmd->type) {
    case CT_CMD_CHARGE_BALANCE: TRY(charge_balance(&c)); break;
    case CT_CMD_DEBIT_REQUESTED: TRY(debit_requested(&c)); break;
    case CT_CMD_REFUND_REQUESTED: TRY(refund_requested(&c)); break;
    /* The concert's, excluded by begin() (see ct_concert_apply). */
    case CT_CMD_CREATE_CONCERT:
    case CT_CMD_ISSUE_TOKEN:
    case CT_CMD_HOLD_SEAT:
    case CT_CMD_REQUEST_PAYMENT:
    case CT_CMD_PAYMENT_SETTLED:
    case CT_CMD_TICK:
    case CT_CMD_NONE:
    case CT_CMD_TYPE_COUNT_: break;
    }
    TRY(store_clock(&c, clock, now));
    fx->clock_ms = now;
    return 0;
}

int ct_domain_reject_poison(ct_role role, const ct_cmd *envelope, ct_effects *fx, ct_error *err) {
    const ct_cmd *m = envelope;
    /* A record one processor sent the other: a poisoned one is a bug the
     * dead-letter topic shows an operator, and there is no client waiting
     * on a command of its own type. */
    bool client = ct_cmd_type_from(m->type) == CT_FROM_CLIENT;
    if (role != CT_ROLE_CONCERT && role != CT_ROLE_WALLET) {
        CT_ERR(err, CT_ERR_FATAL, "unknown processor role %d", (int)role);
        return -1;
    }
    if (!client || m->id_len == 0 || m->command_id.len == 0 || m->key.len == 0) {
        CT_ERR(err, CT_ERR_PERMANENT, "no client command to answer");
        return -1;
    }
    ct_fx_reset(fx, m->id);
    ctx c = {.fx = fx, .err = err, .cmd = m, .now_ms = m->ts_ms};
    ct_topic topic = role == CT_ROLE_WALLET ? CT_TOPIC_ID_WALLET_EVENTS : CT_TOPIC_ID_CONCERT_EVENTS;
    ct_out *o = emit(&c, CT_OUT_COMMAND_REJECTED, topic, &m->key, &m->command_id);
    if (!o) return -1;
    o->rejected_type = m->type;
    o->reason = CT_REASON_POISON;
    return 0;
}

int ct_domain_apply(ct_role role, const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err) {
    if (role == CT_ROLE_CONCERT) return ct_concert_apply(port, cmd, fx, err);
    if (role == CT_ROLE_WALLET) return ct_wallet_apply(port, cmd, fx, err);
    CT_ERR(err, CT_ERR_FATAL, "unknown processor role %d", (int)role);
    return -1;
}
