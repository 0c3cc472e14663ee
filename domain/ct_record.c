/* ct_record: names of the typed records and validation of commands.
 * See ct_record.h. Pure; no allocation. */
#include "ct_record.h"

#include <string.h>

/* Character classes: 1 = id ([A-Za-z0-9_-]), 2 = also allowed in record
 * ids (':' and '.'). A table: validation runs on every record. */
static const uint8_t id_class[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['_'] = 1, ['-'] = 1, [':'] = 2, ['.'] = 2,
};

bool ct_id_valid(const char *s, size_t n) {
    if (n == 0 || n > CT_ID_BYTES_MAX) return false;
    unsigned ok = 1;
    for (size_t i = 0; i < n; i++) ok &= id_class[(unsigned char)s[i]] == 1;
    return ok;
}

bool ct_record_id_valid(const char *s, size_t n) {
    if (n == 0 || n > CT_RECORD_ID_BYTES_MAX) return false;
    unsigned ok = 1;
    for (size_t i = 0; i < n; i++) ok &= id_class[(unsigned char)s[i]] != 0;
    return ok;
}

int ct_id_setn(ct_id *id, const char *s, size_t n) {
    if (!ct_id_valid(s, n)) return -1;
    memcpy(id->s, s, n);
    id->s[n] = '\0';
    id->len = (uint8_t)n;
    return 0;
}

int ct_id_set(ct_id *id, const char *s) { return ct_id_setn(id, s, strlen(s)); }

bool ct_id_eq(const ct_id *a, const ct_id *b) { return a->len == b->len && memcmp(a->s, b->s, a->len) == 0; }

static const char *const reason_names[CT_REASON_COUNT_] = {
    [CT_REASON_TOKEN_NOT_ACTIVE] = "TOKEN_NOT_ACTIVE",
    [CT_REASON_SEAT_TAKEN] = "SEAT_TAKEN",
    [CT_REASON_HOLD_EXPIRED] = "HOLD_EXPIRED",
    [CT_REASON_INSUFFICIENT_BALANCE] = "INSUFFICIENT_BALANCE",
    [CT_REASON_LIMIT_EXCEEDED] = "LIMIT_EXCEEDED",
    [CT_REASON_UNKNOWN_SCHEDULE] = "UNKNOWN_SCHEDULE",
    [CT_REASON_UNKNOWN_CONCERT] = "UNKNOWN_CONCERT",
    [CT_REASON_UNKNOWN_TOKEN] = "UNKNOWN_TOKEN",
    [CT_REASON_UNKNOWN_RESERVATION] = "UNKNOWN_RESERVATION",
    [CT_REASON_UNKNOWN_PAYMENT] = "UNKNOWN_PAYMENT",
    [CT_REASON_DUPLICATE] = "DUPLICATE",
    [CT_REASON_INVALID_SEAT] = "INVALID_SEAT",
    [CT_REASON_BALANCE_LIMIT] = "BALANCE_LIMIT",
    [CT_REASON_TOKEN_MISMATCH] = "TOKEN_MISMATCH",
    [CT_REASON_NOT_OWNER] = "NOT_OWNER",
    [CT_REASON_RESERVATION_NOT_HELD] = "RESERVATION_NOT_HELD",
    [CT_REASON_PAYMENT_NOT_PENDING] = "PAYMENT_NOT_PENDING",
    [CT_REASON_POISON] = "POISON",
    [CT_REASON_HOLD_THROTTLED] = "HOLD_THROTTLED",
};

const char *ct_reason_name(ct_reason r) {
    if ((int)r <= 0 || r >= CT_REASON_COUNT_) return NULL;
    return reason_names[r];
}

bool ct_cmd_bound_ts(ct_cmd *cmd, int64_t logged_ms, int64_t skew_ms) {
    if (logged_ms <= 0 || cmd->ts_ms <= logged_ms + skew_ms) return false;
    cmd->ts_ms = logged_ms + skew_ms;
    return true;
}

ct_reason ct_reason_from_name(const char *s) {
    for (int r = 1; r < CT_REASON_COUNT_; r++)
        if (strcmp(reason_names[r], s) == 0) return (ct_reason)r;
    return CT_REASON_NONE;
}

const char *ct_topic_name(ct_topic t) {
    switch (t) {
    case CT_TOPIC_ID_CONCERT_EVENTS: return "concert.events";
    case CT_TOPIC_ID_WALLET_EVENTS: return "wallet.events";
    case CT_TOPIC_ID_CONCERT_COMMANDS: return "concert.commands";
    case CT_TOPIC_ID_WALLET_COMMANDS: return "wallet.commands";
    default: return NULL;
    }
}

const char *ct_token_status_name(ct_token_status s) {
    switch (s) {
    case CT_TOKEN_WAITING: return "WAITING";
    case CT_TOKEN_ACTIVE: return "ACTIVE";
    case CT_TOKEN_EXPIRED: return "EXPIRED";
    case CT_TOKEN_DONE: return "DONE";
    default: return NULL;
    }
}

/* ---- validation ------------------------------------------------------ */

#define BAD(...)                                    \
    do {                                            \
        CT_ERR(err, CT_ERR_PERMANENT, __VA_ARGS__); \
        return -1;                                  \
    } while (0)

static int need_id(const ct_id *id, const char *field, ct_error *err) {
    if (!ct_id_valid(id->s, id->len) || id->s[id->len] != '\0')
        BAD("field data.%s: must be 1..%d characters of [A-Za-z0-9_-]", field, CT_ID_BYTES_MAX);
    return 0;
}

static int need_range(int64_t v, int64_t lo, int64_t hi, const char *field, ct_error *err) {
    if (v < lo || v > hi)
        BAD("field data.%s: %lld is out of range %lld..%lld", field, (long long)v, (long long)lo, (long long)hi);
    return 0;
}

static int need_key(const ct_cmd *c, const ct_id *want, const char *field, ct_error *err) {
    if (!ct_id_eq(&c->key, want)) BAD("field key: must equal data.%s", field);
    return 0;
}

/* CreateConcert's schedules: each one's fields, and no schedule twice. */
static int need_schedules(const ct_create_concert *x, ct_error *err) {
    if (x->schedule_count < 1 || x->schedule_count > CT_SCHEDULES_PER_CONCERT_MAX)
        BAD("field data.schedules: must hold 1..%d schedules", CT_SCHEDULES_PER_CONCERT_MAX);
    for (uint32_t i = 0; i < x->schedule_count; i++) {
        const ct_schedule_spec *s = &x->schedules[i];
        if (need_id(&s->schedule_id, "schedules[].schedule_id", err) ||
            need_range(s->starts_at_ms, 0, CT_TS_MS_MAX, "schedules[].starts_at", err) ||
            need_range(s->seats, 1, CT_SEATS_PER_SCHEDULE_MAX, "schedules[].seats", err) ||
            need_range(s->price_won, 0, CT_PRICE_WON_MAX, "schedules[].price", err))
            return -1;
        for (uint32_t j = 0; j < i; j++)
            if (ct_id_eq(&x->schedules[j].schedule_id, &s->schedule_id))
                BAD("field data.schedules: schedule_id '%s' appears twice", s->schedule_id.s);
    }
    return 0;
}

/* One data field of c, by its catalogue row. */
static int need_field(const ct_cmd *c, const ct_field *f, ct_error *err) {
    const char *p = (const char *)c + f->off;
    switch (f->kind) {
    case CT_FIELD_ID: return need_id((const ct_id *)(const void *)p, f->name, err);
    case CT_FIELD_I64: {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return need_range(v, f->lo, f->hi, f->name, err);
    }
    case CT_FIELD_U32: {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        return need_range(v, f->lo, f->hi, f->name, err);
    }
    case CT_FIELD_BOOL: return 0;
    case CT_FIELD_REASON: {
        ct_reason r;
        memcpy(&r, p, sizeof r);
        if (f->required && !ct_reason_name(r)) BAD("field data.%s: required", f->name);
        return 0;
    }
    case CT_FIELD_TITLE: { /* CreateConcert's only */
        const ct_create_concert *x = &c->u.create_concert;
        if (x->title_len == 0 || x->title_len > CT_TITLE_BYTES_MAX || strlen(x->title) != x->title_len)
            BAD("field data.title: must be 1..%d bytes without NUL", CT_TITLE_BYTES_MAX);
        return 0;
    }
    case CT_FIELD_SCHEDULES: return need_schedules(&c->u.create_concert, err);
    }
    BAD("field data.%s: unknown field kind", f->name);
}

int ct_cmd_validate(const ct_cmd *c, ct_error *err) {
    if (!ct_cmd_type_name(c->type)) BAD("field type: unknown command type");
    if (!ct_record_id_valid(c->id, c->id_len) || c->id[c->id_len] != '\0')
        BAD("field id: must be 1..%d characters of [A-Za-z0-9_:.-]", CT_RECORD_ID_BYTES_MAX);
    if (c->ts_ms < 0 || c->ts_ms > CT_TS_MS_MAX)
        BAD("field ts: %lld is out of range 0..%lld ms", (long long)c->ts_ms, (long long)CT_TS_MS_MAX);
    if (c->type == CT_CMD_TICK) {
        /* Ticks come from the relay's ticker: no HTTP command, no key. */
        if (c->command_id.len && !ct_id_valid(c->command_id.s, c->command_id.len))
            BAD("field command_id: must be empty or 1..%d characters of [A-Za-z0-9_-]", CT_ID_BYTES_MAX);
        if (c->key.len && !ct_id_valid(c->key.s, c->key.len))
            BAD("field key: must be empty or 1..%d characters of [A-Za-z0-9_-]", CT_ID_BYTES_MAX);
        return 0;
    }
    if (!ct_id_valid(c->command_id.s, c->command_id.len))
        BAD("field command_id: must be 1..%d characters of [A-Za-z0-9_-]", CT_ID_BYTES_MAX);
    if (!ct_id_valid(c->key.s, c->key.len))
        BAD("field key: must be 1..%d characters of [A-Za-z0-9_-]", CT_ID_BYTES_MAX);
    /* Every data field as its catalogue row says; the key is the field the
     * catalogue names for it. */
    const char *key = ct_cmd_type_key_field(c->type);
    for (const ct_field *f = ct_cmd_fields(c->type); f->name; f++) {
        if (need_field(c, f, err) != 0) return -1;
        if (key && strcmp(f->name, key) == 0 &&
            need_key(c, (const ct_id *)(const void *)((const char *)c + f->off), key, err) != 0)
            return -1;
    }
    /* The one rule between two fields. */
    if (c->type == CT_CMD_PAYMENT_SETTLED) {
        const ct_payment_settled *x = &c->u.payment_settled;
        if (x->ok && x->reason != CT_REASON_NONE) BAD("field data.reason: must be absent when ok is true");
        if (!x->ok && !ct_reason_name(x->reason)) BAD("field data.reason: required when ok is false");
    }
    return 0;
}
