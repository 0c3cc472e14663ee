/* ct_state: key layout and value encodings. See ct_state.h and README.md.
 * Pure byte shuffling; every decoder checks every length. */
#include "ct_state.h"

#include <string.h>

bool ct_reservation_transition_valid(ct_res_status from, ct_res_status to) {
    /* rows: from; columns: to (HELD, PENDING, CONFIRMED, EXPIRED) */
    static const bool ok[5][5] = {
        [CT_RES_HELD] = {[CT_RES_PAYMENT_PENDING] = true, [CT_RES_EXPIRED] = true},
        [CT_RES_PAYMENT_PENDING] = {[CT_RES_CONFIRMED] = true, [CT_RES_HELD] = true},
    };
    if ((int)from < 1 || from > 4 || (int)to < 1 || to > 4) return false;
    return ok[from][to];
}

/* ---- writer / reader ------------------------------------------------- */

typedef struct wr {
    uint8_t *p;
    size_t n;
} wr;

static void w_u8(wr *w, uint8_t x) { w->p[w->n++] = x; }
static void w_u32(wr *w, uint32_t x) {
    for (int i = 3; i >= 0; i--) w->p[w->n++] = (uint8_t)(x >> (8 * i));
}
static void w_u64(wr *w, uint64_t x) {
    for (int i = 7; i >= 0; i--) w->p[w->n++] = (uint8_t)(x >> (8 * i));
}
static void w_i64(wr *w, int64_t x) { w_u64(w, (uint64_t)x); }
static void w_bytes(wr *w, const void *b, size_t n) {
    memcpy(w->p + w->n, b, n);
    w->n += n;
}
static void w_id(wr *w, const ct_id *id) {
    w_u8(w, id->len);
    w_bytes(w, id->s, id->len);
}
/* A key component: the id and the '/' separator. */
static void w_kid(wr *w, const ct_id *id) {
    w_bytes(w, id->s, id->len);
    w_u8(w, '/');
}
static void w_tag(wr *w, char tag) {
    w_u8(w, (uint8_t)tag);
    w_u8(w, '/');
}

typedef struct rd {
    const uint8_t *p;
    size_t n, i;
    bool bad;
} rd;

static bool r_has(rd *r, size_t k) {
    if (r->bad || r->n - r->i < k) {
        r->bad = true;
        return false;
    }
    return true;
}
static uint8_t r_u8(rd *r) { return r_has(r, 1) ? r->p[r->i++] : 0; }
static uint32_t r_u32(rd *r) {
    if (!r_has(r, 4)) return 0;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) x = (x << 8) | r->p[r->i++];
    return x;
}
static uint64_t r_u64(rd *r) {
    if (!r_has(r, 8)) return 0;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x = (x << 8) | r->p[r->i++];
    return x;
}
static int64_t r_i64(rd *r) { return (int64_t)r_u64(r); }
/* An id; empty allowed when `optional`. */
static void r_id(rd *r, ct_id *id, bool optional) {
    uint8_t n = r_u8(r);
    if (r->bad) return;
    if (n == 0) {
        if (!optional) r->bad = true;
        id->len = 0;
        id->s[0] = '\0';
        return;
    }
    /* Lengths are checked; the characters were checked when the id entered
     * the system (ct_cmd_validate), and this is the hottest decode path. */
    if (n > CT_ID_BYTES_MAX || !r_has(r, n)) {
        r->bad = true;
        return;
    }
    memcpy(id->s, r->p + r->i, n);
    id->s[n] = '\0';
    id->len = n;
    r->i += n;
}
static int r_done(rd *r) { return (r->bad || r->i != r->n) ? -1 : 0; }
static void r_start(rd *r, const uint8_t *v, size_t n) {
    r->p = v;
    r->n = n;
    r->i = 0;
    r->bad = false;
    if (r_u8(r) != CT_STATE_FORMAT) r->bad = true;
}

/* ---- keys ------------------------------------------------------------ */

size_t ct_key_clock(uint8_t *k) {
    memcpy(k, "M/clock", 7);
    return 7;
}

#define KEY1(fn, tag)                       \
    size_t fn(uint8_t *k, const ct_id *a) { \
        wr w = {k, 0};                      \
        w_tag(&w, tag);                     \
        w_bytes(&w, a->s, a->len);          \
        return w.n;                         \
    }
KEY1(ct_key_concert, 'C')
KEY1(ct_key_queue, 'A')
KEY1(ct_key_token, 'T')
KEY1(ct_key_reservation, 'R')
KEY1(ct_key_payment, 'P')
KEY1(ct_key_wallet, 'W')
KEY1(ct_key_debit, 'X')
KEY1(ct_key_refund, 'F')
KEY1(ct_key_expired_holds, 'H')

/* <tag>/<concert>/<second id>: a schedule, a user's token in a concert. */
#define KEY2(fn, tag)                                       \
    size_t fn(uint8_t *k, const ct_id *c, const ct_id *b) { \
        wr w = {k, 0};                                      \
        w_tag(&w, tag);                                     \
        w_kid(&w, c);                                       \
        w_bytes(&w, b->s, b->len);                          \
        return w.n;                                         \
    }
KEY2(ct_key_schedule, 'S')
KEY2(ct_key_user_token, 'V')

size_t ct_key_seat(uint8_t *k, const ct_id *c, const ct_id *s, uint32_t seat_no) {
    wr w = {k, 0};
    w_tag(&w, 'E');
    w_kid(&w, c);
    w_kid(&w, s);
    w_u32(&w, seat_no);
    return w.n;
}

size_t ct_key_waiting(uint8_t *k, const ct_id *c, uint64_t seq) {
    wr w = {k, 0};
    w_tag(&w, 'Q');
    w_kid(&w, c);
    w_u64(&w, seq);
    return w.n;
}

size_t ct_key_deadline_prefix(uint8_t *k) {
    k[0] = 'D';
    k[1] = '/';
    return 2;
}

size_t ct_key_deadline(uint8_t *k, int64_t at_ms, ct_deadline_kind kind, const ct_id *id) {
    wr w = {k, 0};
    w_tag(&w, 'D');
    w_u64(&w, (uint64_t)at_ms); /* at_ms >= 0: unsigned order = numeric order */
    w_u8(&w, '/');
    w_u8(&w, (uint8_t)kind);
    w_u8(&w, '/');
    w_bytes(&w, id->s, id->len);
    return w.n;
}

int ct_key_deadline_parse(const uint8_t *k, size_t n, int64_t *at_ms, ct_deadline_kind *kind, ct_id *id) {
    if (n < 2 + 8 + 1 + 1 + 1 + 1 || k[0] != 'D' || k[1] != '/' || k[10] != '/' || k[12] != '/') return -1;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++) t = (t << 8) | k[2 + i];
    if (t > (uint64_t)INT64_MAX) return -1;
    if (k[11] != CT_DEADLINE_HOLD && k[11] != CT_DEADLINE_TOKEN) return -1;
    if (ct_id_setn(id, (const char *)k + 13, n - 13) != 0) return -1;
    *at_ms = (int64_t)t;
    *kind = (ct_deadline_kind)k[11];
    return 0;
}

size_t ct_key_user_seats(uint8_t *k, const ct_id *c, const ct_id *s, const ct_id *u) {
    wr w = {k, 0};
    w_tag(&w, 'U');
    w_kid(&w, c);
    w_kid(&w, s);
    w_bytes(&w, u->s, u->len);
    return w.n;
}

/* ---- values ---------------------------------------------------------- */

static wr w_start(uint8_t *v) {
    wr w = {v, 0};
    w_u8(&w, CT_STATE_FORMAT);
    return w;
}

size_t ct_val_empty_encode(uint8_t *v) {
    v[0] = CT_STATE_FORMAT;
    return 1;
}

size_t ct_val_i64_encode(uint8_t *v, int64_t x) {
    wr w = w_start(v);
    w_i64(&w, x);
    return w.n;
}
int ct_val_i64_decode(const uint8_t *v, size_t n, int64_t *x) {
    rd r;
    r_start(&r, v, n);
    *x = r_i64(&r);
    return r_done(&r);
}

size_t ct_val_u8_encode(uint8_t *v, uint8_t x) {
    wr w = w_start(v);
    w_u8(&w, x);
    return w.n;
}
int ct_val_u8_decode(const uint8_t *v, size_t n, uint8_t *x) {
    rd r;
    r_start(&r, v, n);
    *x = r_u8(&r);
    return r_done(&r);
}

size_t ct_val_id_encode(uint8_t *v, const ct_id *id) {
    wr w = w_start(v);
    w_id(&w, id);
    return w.n;
}
int ct_val_id_decode(const uint8_t *v, size_t n, ct_id *id) {
    rd r;
    r_start(&r, v, n);
    r_id(&r, id, false);
    return r_done(&r);
}

size_t ct_val_concert_encode(uint8_t *v, const ct_st_concert *x) {
    wr w = w_start(v);
    w_u32(&w, x->max_active);
    w_i64(&w, x->active_ttl_ms);
    w_i64(&w, x->hold_ttl_ms);
    w_u8(&w, (uint8_t)(x->schedule_count >> 8));
    w_u8(&w, (uint8_t)x->schedule_count);
    w_u8(&w, (uint8_t)x->title_len);
    w_bytes(&w, x->title, x->title_len);
    return w.n;
}
int ct_val_concert_decode(const uint8_t *v, size_t n, ct_st_concert *x) {
    rd r;
    r_start(&r, v, n);
    x->max_active = r_u32(&r);
    x->active_ttl_ms = r_i64(&r);
    x->hold_ttl_ms = r_i64(&r);
    x->schedule_count = (uint16_t)(r_u8(&r) << 8);
    x->schedule_count |= r_u8(&r);
    x->title_len = r_u8(&r);
    if (x->title_len > CT_TITLE_BYTES_MAX || !r_has(&r, x->title_len)) return -1;
    memcpy(x->title, r.p + r.i, x->title_len);
    x->title[x->title_len] = '\0';
    r.i += x->title_len;
    return r_done(&r);
}

size_t ct_val_queue_encode(uint8_t *v, const ct_st_queue *x) {
    wr w = w_start(v);
    w_u64(&w, x->next_seq);
    w_u64(&w, x->last_admitted_seq);
    w_u32(&w, x->active_count);
    return w.n;
}
int ct_val_queue_decode(const uint8_t *v, size_t n, ct_st_queue *x) {
    rd r;
    r_start(&r, v, n);
    x->next_seq = r_u64(&r);
    x->last_admitted_seq = r_u64(&r);
    x->active_count = r_u32(&r);
    return r_done(&r);
}

size_t ct_val_schedule_encode(uint8_t *v, const ct_st_schedule *x) {
    wr w = w_start(v);
    w_i64(&w, x->starts_at_ms);
    w_u32(&w, x->seats);
    w_i64(&w, x->price_won);
    return w.n;
}
int ct_val_schedule_decode(const uint8_t *v, size_t n, ct_st_schedule *x) {
    rd r;
    r_start(&r, v, n);
    x->starts_at_ms = r_i64(&r);
    x->seats = r_u32(&r);
    x->price_won = r_i64(&r);
    return r_done(&r);
}

size_t ct_val_seat_encode(uint8_t *v, const ct_st_seat *x) {
    wr w = w_start(v);
    w_u8(&w, x->status);
    w_id(&w, &x->reservation_id);
    w_id(&w, &x->user_id);
    return w.n;
}
int ct_val_seat_decode(const uint8_t *v, size_t n, ct_st_seat *x) {
    rd r;
    r_start(&r, v, n);
    x->status = r_u8(&r);
    r_id(&r, &x->reservation_id, false);
    r_id(&r, &x->user_id, false);
    return r_done(&r);
}

size_t ct_val_token_encode(uint8_t *v, const ct_st_token *x) {
    wr w = w_start(v);
    w_u8(&w, x->status);
    w_u64(&w, x->seq);
    w_i64(&w, x->issued_at_ms);
    w_i64(&w, x->activated_at_ms);
    w_i64(&w, x->active_until_ms);
    w_i64(&w, x->ended_at_ms);
    w_id(&w, &x->user_id);
    w_id(&w, &x->concert_id);
    w_id(&w, &x->command_id);
    return w.n;
}
int ct_val_token_decode(const uint8_t *v, size_t n, ct_st_token *x) {
    rd r;
    r_start(&r, v, n);
    x->status = r_u8(&r);
    x->seq = r_u64(&r);
    x->issued_at_ms = r_i64(&r);
    x->activated_at_ms = r_i64(&r);
    x->active_until_ms = r_i64(&r);
    x->ended_at_ms = r_i64(&r);
    r_id(&r, &x->user_id, false);
    r_id(&r, &x->concert_id, false);
    r_id(&r, &x->command_id, false);
    return r_done(&r);
}

size_t ct_val_reservation_encode(uint8_t *v, const ct_st_reservation *x) {
    wr w = w_start(v);
    w_u8(&w, x->status);
    w_u32(&w, x->seat_no);
    w_i64(&w, x->held_at_ms);
    w_i64(&w, x->hold_until_ms);
    w_i64(&w, x->price_won);
    w_id(&w, &x->concert_id);
    w_id(&w, &x->schedule_id);
    w_id(&w, &x->user_id);
    w_id(&w, &x->token);
    w_id(&w, &x->payment_id);
    w_id(&w, &x->command_id);
    return w.n;
}
int ct_val_reservation_decode(const uint8_t *v, size_t n, ct_st_reservation *x) {
    rd r;
    r_start(&r, v, n);
    x->status = r_u8(&r);
    x->seat_no = r_u32(&r);
    x->held_at_ms = r_i64(&r);
    x->hold_until_ms = r_i64(&r);
    x->price_won = r_i64(&r);
    r_id(&r, &x->concert_id, false);
    r_id(&r, &x->schedule_id, false);
    r_id(&r, &x->user_id, false);
    r_id(&r, &x->token, false);
    r_id(&r, &x->payment_id, true);
    r_id(&r, &x->command_id, false);
    return r_done(&r);
}

size_t ct_val_payment_encode(uint8_t *v, const ct_st_payment *x) {
    wr w = w_start(v);
    w_u8(&w, x->status);
    w_i64(&w, x->amount_won);
    w_id(&w, &x->reservation_id);
    w_id(&w, &x->user_id);
    w_id(&w, &x->concert_id);
    w_id(&w, &x->command_id);
    return w.n;
}
int ct_val_payment_decode(const uint8_t *v, size_t n, ct_st_payment *x) {
    rd r;
    r_start(&r, v, n);
    x->status = r_u8(&r);
    x->amount_won = r_i64(&r);
    r_id(&r, &x->reservation_id, false);
    r_id(&r, &x->user_id, false);
    r_id(&r, &x->concert_id, false);
    r_id(&r, &x->command_id, false);
    return r_done(&r);
}

size_t ct_val_debit_encode(uint8_t *v, const ct_st_debit *x) {
    wr w = w_start(v);
    w_u8(&w, x->ok);
    w_i64(&w, x->amount_won);
    w_id(&w, &x->user_id);
    return w.n;
}
int ct_val_debit_decode(const uint8_t *v, size_t n, ct_st_debit *x) {
    rd r;
    r_start(&r, v, n);
    x->ok = r_u8(&r);
    x->amount_won = r_i64(&r);
    r_id(&r, &x->user_id, false);
    return r_done(&r);
}
