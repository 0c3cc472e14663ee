/* ct_codec: see ct_codec.h. Decoding is table-driven (one row per data
 * field of each command type); encoding is one fixed field list per output
 * type. */
#include "ct_codec.h"

#include <jansson.h>
#include <stddef.h>
#include <string.h>

/* ---- decoding -------------------------------------------------------- */

/* The fields of each command type: the catalogue's (ct_catalog.h). */
typedef ct_field field;

#define BAD(...)                                    \
    do {                                            \
        CT_ERR(err, CT_ERR_PERMANENT, __VA_ARGS__); \
        return -1;                                  \
    } while (0)

/* The envelope's fields (DESIGN.md section 3), in the order both decoders
 * index them: e[0] id .. e[6] data. */
static const char *const envelope_fields[] = {"id", "type", "v", "ts", "command_id", "key", "data"};
#define ENVELOPE_FIELDS 7

/* Stores an integer field's value, range-checked by the caller. */
static void store_int(const field *f, ct_cmd *c, int64_t x) {
    char *p = (char *)c + f->off;
    if (f->kind == CT_FIELD_I64) {
        memcpy(p, &x, sizeof x);
    } else {
        uint32_t u = (uint32_t)x;
        memcpy(p, &u, sizeof u);
    }
}

/* An absent optional field: integers take their default, a reason stays
 * NONE. */
static void store_default(const field *f, ct_cmd *c) {
    if (f->kind == CT_FIELD_I64 || f->kind == CT_FIELD_U32) store_int(f, c, f->dflt);
}

static int get_id(json_t *j, const char *where, ct_id *id, bool empty_ok, ct_error *err) {
    if (!json_is_string(j)) BAD("field %s: expected a string", where);
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n == 0 && empty_ok) {
        id->len = 0;
        id->s[0] = '\0';
        return 0;
    }
    if (ct_id_setn(id, s, n) != 0) BAD("field %s: must be 1..%d characters of [A-Za-z0-9_-]", where, CT_ID_BYTES_MAX);
    return 0;
}

static int get_int(json_t *j, const char *where, int64_t lo, int64_t hi, int64_t *out, ct_error *err) {
    if (!json_is_integer(j)) BAD("field %s: expected an integer", where);
    json_int_t v = json_integer_value(j);
    if (v < lo || v > hi)
        BAD("field %s: %lld is out of range %lld..%lld", where, (long long)v, (long long)lo, (long long)hi);
    *out = (int64_t)v;
    return 0;
}

static int decode_schedules(json_t *arr, ct_cmd *c, ct_error *err) {
    if (!json_is_array(arr)) BAD("field data.schedules: expected an array");
    size_t n = json_array_size(arr);
    if (n < 1 || n > CT_SCHEDULES_PER_CONCERT_MAX)
        BAD("field data.schedules: must hold 1..%d schedules, not %zu", CT_SCHEDULES_PER_CONCERT_MAX, n);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        ct_schedule_spec *sp = &c->u.create_concert.schedules[i];
        if (!json_is_object(s)) BAD("field data.schedules[%zu]: expected an object", i);
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v) {
            if (strcmp(k, "schedule_id") && strcmp(k, "starts_at") && strcmp(k, "seats") && strcmp(k, "price"))
                BAD("field data.schedules[%zu].%s: unknown field", i, k);
        }
        static const char *const req[] = {"schedule_id", "starts_at", "seats", "price"};
        for (int r = 0; r < 4; r++)
            if (!json_object_get(s, req[r])) BAD("field data.schedules[%zu].%s: missing", i, req[r]);
        char where[64];
        int64_t x;
        snprintf(where, sizeof where, "data.schedules[%zu].schedule_id", i);
        if (get_id(json_object_get(s, "schedule_id"), where, &sp->schedule_id, false, err)) return -1;
        snprintf(where, sizeof where, "data.schedules[%zu].starts_at", i);
        if (get_int(json_object_get(s, "starts_at"), where, 0, CT_TS_MS_MAX, &sp->starts_at_ms, err)) return -1;
        snprintf(where, sizeof where, "data.schedules[%zu].seats", i);
        if (get_int(json_object_get(s, "seats"), where, 1, CT_SEATS_PER_SCHEDULE_MAX, &x, err)) return -1;
        sp->seats = (uint32_t)x;
        snprintf(where, sizeof where, "data.schedules[%zu].price", i);
        if (get_int(json_object_get(s, "price"), where, 0, CT_PRICE_WON_MAX, &sp->price_won, err)) return -1;
    }
    c->u.create_concert.schedule_count = (uint32_t)n;
    return 0;
}

static int decode_field(const field *f, json_t *j, ct_cmd *c, ct_error *err) {
    char *p = (char *)c + f->off;
    char where[64];
    snprintf(where, sizeof where, "data.%s", f->name);
    int64_t x;
    switch (f->kind) {
    case CT_FIELD_ID: return get_id(j, where, (ct_id *)(void *)p, false, err);
    case CT_FIELD_I64:
    case CT_FIELD_U32:
        if (get_int(j, where, f->lo, f->hi, &x, err)) return -1;
        store_int(f, c, x);
        return 0;
    case CT_FIELD_BOOL: {
        if (!json_is_boolean(j)) BAD("field %s: expected true or false", where);
        bool b = json_is_true(j);
        memcpy(p, &b, sizeof b);
        return 0;
    }
    case CT_FIELD_REASON: {
        if (!json_is_string(j)) BAD("field %s: expected a reason code string", where);
        ct_reason r = ct_reason_from_name(json_string_value(j));
        if (r == CT_REASON_NONE) BAD("field %s: unknown reason code '%.64s'", where, json_string_value(j));
        memcpy(p, &r, sizeof r);
        return 0;
    }
    case CT_FIELD_TITLE: {
        if (!json_is_string(j)) BAD("field %s: expected a string", where);
        size_t n = json_string_length(j);
        const char *s = json_string_value(j);
        if (n == 0 || n > CT_TITLE_BYTES_MAX || memchr(s, 0, n))
            BAD("field %s: must be 1..%d bytes of UTF-8 without NUL", where, CT_TITLE_BYTES_MAX);
        memcpy(c->u.create_concert.title, s, n);
        c->u.create_concert.title[n] = '\0';
        c->u.create_concert.title_len = (uint16_t)n;
        return 0;
    }
    case CT_FIELD_SCHEDULES: return decode_schedules(j, c, err);
    }
    BAD("field %s: bad field kind", where);
}

static int decode_data(json_t *data, ct_cmd *c, ct_error *err) {
    const field *fs = ct_cmd_fields(c->type);
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v) {
        const field *f = fs;
        while (f->name && strcmp(f->name, k)) f++;
        if (!f->name) BAD("field data.%.64s: unknown field for %s", k, ct_cmd_type_name(c->type));
    }
    for (const field *f = fs; f->name; f++) {
        json_t *j = json_object_get(data, f->name);
        if (!j) {
            if (f->required) BAD("field data.%s: missing", f->name);
            store_default(f, c);
            continue;
        }
        if (decode_field(f, j, c, err)) return -1;
    }
    return 0;
}

static int decode_root(json_t *root, ct_cmd *c, ct_error *err) {
    if (!json_is_object(root)) BAD("record: expected a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        int i = 0;
        while (i < ENVELOPE_FIELDS && strcmp(envelope_fields[i], k)) i++;
        if (i == ENVELOPE_FIELDS) BAD("field %.64s: unknown envelope field", k);
    }
    for (int i = 0; i < ENVELOPE_FIELDS; i++)
        if (!json_object_get(root, envelope_fields[i])) BAD("field %s: missing", envelope_fields[i]);

    json_t *j = json_object_get(root, "type");
    if (!json_is_string(j)) BAD("field type: expected a string");
    c->type = ct_cmd_type_from_name(json_string_value(j));
    if (c->type == CT_CMD_NONE) BAD("field type: unknown record type '%.64s'", json_string_value(j));

    j = json_object_get(root, "id");
    if (!json_is_string(j)) BAD("field id: expected a string");
    size_t n = json_string_length(j);
    if (!ct_record_id_valid(json_string_value(j), n))
        BAD("field id: must be 1..%d characters of [A-Za-z0-9_:.-]", CT_RECORD_ID_BYTES_MAX);
    memcpy(c->id, json_string_value(j), n + 1);
    c->id_len = (uint8_t)n;

    int64_t x;
    if (get_int(json_object_get(root, "v"), "v", CT_CODEC_VERSION, CT_CODEC_VERSION, &x, err)) return -1;
    if (get_int(json_object_get(root, "ts"), "ts", 0, CT_TS_MS_MAX, &c->ts_ms, err)) return -1;
    bool tick = c->type == CT_CMD_TICK;
    if (get_id(json_object_get(root, "command_id"), "command_id", &c->command_id, tick, err)) return -1;
    if (get_id(json_object_get(root, "key"), "key", &c->key, tick, err)) return -1;
    j = json_object_get(root, "data");
    if (!json_is_object(j)) BAD("field data: expected an object");
    return decode_data(j, c, err);
}

/* ---- the fast path ----------------------------------------------------
 *
 * jansson builds a tree with an allocation per value and spends most of a
 * processor's decoding time doing so (about 46,000 instructions for a
 * 400-byte HoldSeat). Almost every record the pipeline carries is a flat
 * envelope of plain ASCII strings and integers, so this scanner reads that
 * shape in place. It either decodes a record into exactly what the general
 * decoder would produce, or declines (returns 0) on anything else: escapes,
 * non-ASCII, arrays, nulls, floats, long numbers, duplicate, unknown or
 * missing fields, out-of-range values, CreateConcert. A declined record
 * goes through the general decoder, which alone writes error messages, so
 * what is accepted and every message stay as they were
 * (tests/domain/test_codec_fast.c holds the two decoders equal). */

typedef struct scan {
    const char *p, *end;
} scan;

enum { TOK_STR, TOK_INT, TOK_TRUE, TOK_FALSE };

typedef struct tok {
    const char *key;
    size_t key_len;
    int kind;
    const char *s;
    size_t n;
    int64_t i;
} tok;

#define FAST_DATA_FIELDS_MAX 12

static void sc_ws(scan *sc) {
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r')) sc->p++;
}

static bool sc_ch(scan *sc, char c) {
    sc_ws(sc);
    if (sc->p < sc->end && *sc->p == c) {
        sc->p++;
        return true;
    }
    return false;
}

/* A string of printable ASCII without escapes. */
static bool sc_str(scan *sc, const char **s, size_t *n) {
    sc_ws(sc);
    if (sc->p >= sc->end || *sc->p != '"') return false;
    const char *b = ++sc->p;
    while (sc->p < sc->end) {
        unsigned char ch = (unsigned char)*sc->p;
        if (ch == '"') {
            *s = b;
            *n = (size_t)(sc->p - b);
            sc->p++;
            return true;
        }
        if (ch < 0x20 || ch >= 0x7f || ch == '\\') return false;
        sc->p++;
    }
    return false;
}

/* An integer of at most 18 digits (no fraction, exponent, leading zero). */
static bool sc_int(scan *sc, int64_t *out) {
    sc_ws(sc);
    const char *p = sc->p;
    bool neg = p < sc->end && *p == '-';
    if (neg) p++;
    const char *d = p;
    int64_t v = 0;
    while (p < sc->end && *p >= '0' && *p <= '9') {
        if (p - d >= 18) return false;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (p == d || (*d == '0' && p - d > 1)) return false;
    if (p < sc->end && (*p == '.' || *p == 'e' || *p == 'E')) return false;
    sc->p = p;
    *out = neg ? -v : v;
    return true;
}

static bool sc_value(scan *sc, tok *t) {
    sc_ws(sc);
    if (sc->p >= sc->end) return false;
    char c = *sc->p;
    if (c == '"') {
        t->kind = TOK_STR;
        return sc_str(sc, &t->s, &t->n);
    }
    if (c == 't' || c == 'f') {
        size_t n = c == 't' ? 4 : 5;
        if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, c == 't' ? "true" : "false", n) != 0) return false;
        sc->p += n;
        t->kind = c == 't' ? TOK_TRUE : TOK_FALSE;
        return true;
    }
    t->kind = TOK_INT;
    return sc_int(sc, &t->i);
}

/* A flat object of string, integer and boolean values, distinct keys. */
static bool sc_flat_object(scan *sc, tok *toks, size_t *count) {
    size_t n = 0;
    if (!sc_ch(sc, '{')) return false;
    if (sc_ch(sc, '}')) {
        *count = 0;
        return true;
    }
    do {
        if (n == FAST_DATA_FIELDS_MAX) return false;
        tok *t = &toks[n];
        if (!sc_str(sc, &t->key, &t->key_len) || !sc_ch(sc, ':') || !sc_value(sc, t)) return false;
        for (size_t i = 0; i < n; i++)
            if (toks[i].key_len == t->key_len && memcmp(toks[i].key, t->key, t->key_len) == 0) return false;
        n++;
    } while (sc_ch(sc, ','));
    if (!sc_ch(sc, '}')) return false;
    *count = n;
    return true;
}

static bool key_is(const tok *t, const char *name) {
    size_t n = strlen(name);
    return t->key_len == n && memcmp(t->key, name, n) == 0;
}

static bool fast_id(const tok *t, ct_id *id, bool empty_ok) {
    if (t->kind != TOK_STR) return false;
    if (t->n == 0 && empty_ok) return true; /* *id was zeroed */
    return ct_id_setn(id, t->s, t->n) == 0;
}

static bool fast_int(const tok *t, int64_t lo, int64_t hi, int64_t *out) {
    if (t->kind != TOK_INT || t->i < lo || t->i > hi) return false;
    *out = t->i;
    return true;
}

static bool fast_field(const field *f, const tok *t, ct_cmd *c) {
    char *p = (char *)c + f->off;
    int64_t x;
    switch (f->kind) {
    case CT_FIELD_ID: return fast_id(t, (ct_id *)(void *)p, false);
    case CT_FIELD_I64:
    case CT_FIELD_U32:
        if (!fast_int(t, f->lo, f->hi, &x)) return false;
        store_int(f, c, x);
        return true;
    case CT_FIELD_BOOL: {
        if (t->kind != TOK_TRUE && t->kind != TOK_FALSE) return false;
        bool b = t->kind == TOK_TRUE;
        memcpy(p, &b, sizeof b);
        return true;
    }
    case CT_FIELD_REASON: {
        char name[64];
        if (t->kind != TOK_STR || t->n >= sizeof name) return false;
        memcpy(name, t->s, t->n);
        name[t->n] = '\0';
        ct_reason r = ct_reason_from_name(name);
        if (r == CT_REASON_NONE) return false;
        memcpy(p, &r, sizeof r);
        return true;
    }
    default: return false; /* titles and schedules: the general decoder */
    }
}

int ct_codec_decode_fast(const char *buf, size_t len, ct_cmd *c) {
    scan sc = {buf, buf + len};
    tok e[ENVELOPE_FIELDS], data[FAST_DATA_FIELDS_MAX];
    size_t data_n = 0;
    bool seen[ENVELOPE_FIELDS] = {false};
    if (len > CT_INPUT_RECORD_BYTES_MAX || !sc_ch(&sc, '{')) return 0;
    do {
        const char *k;
        size_t kn;
        if (!sc_str(&sc, &k, &kn) || !sc_ch(&sc, ':')) return 0;
        int i = 0;
        while (i < ENVELOPE_FIELDS && (strlen(envelope_fields[i]) != kn || memcmp(envelope_fields[i], k, kn) != 0)) i++;
        if (i == ENVELOPE_FIELDS || seen[i]) return 0;
        seen[i] = true;
        if (i == ENVELOPE_FIELDS - 1) { /* data */
            if (!sc_flat_object(&sc, data, &data_n)) return 0;
        } else if (!sc_value(&sc, &e[i])) {
            return 0;
        }
    } while (sc_ch(&sc, ','));
    if (!sc_ch(&sc, '}')) return 0;
    sc_ws(&sc);
    if (sc.p != sc.end) return 0;
    for (int i = 0; i < ENVELOPE_FIELDS; i++)
        if (!seen[i]) return 0;

    char type[32];
    if (e[1].kind != TOK_STR || e[1].n >= sizeof type) return 0;
    memcpy(type, e[1].s, e[1].n);
    type[e[1].n] = '\0';
    memset(c, 0, sizeof *c);
    c->type = ct_cmd_type_from_name(type);
    if (c->type == CT_CMD_NONE) return 0;
    if (e[0].kind != TOK_STR || !ct_record_id_valid(e[0].s, e[0].n)) return 0;
    memcpy(c->id, e[0].s, e[0].n);
    c->id[e[0].n] = '\0';
    c->id_len = (uint8_t)e[0].n;
    int64_t v;
    bool tick = c->type == CT_CMD_TICK;
    if (!fast_int(&e[2], CT_CODEC_VERSION, CT_CODEC_VERSION, &v) || !fast_int(&e[3], 0, CT_TS_MS_MAX, &c->ts_ms) ||
        !fast_id(&e[4], &c->command_id, tick) || !fast_id(&e[5], &c->key, tick))
        return 0;

    const field *fs = ct_cmd_fields(c->type);
    for (size_t i = 0; i < data_n; i++) {
        const field *f = fs;
        while (f->name && !key_is(&data[i], f->name)) f++;
        if (!f->name) return 0;
    }
    for (const field *f = fs; f->name; f++) {
        const tok *t = NULL;
        for (size_t i = 0; i < data_n && !t; i++)
            if (key_is(&data[i], f->name)) t = &data[i];
        if (!t) {
            if (f->required || f->kind == CT_FIELD_TITLE || f->kind == CT_FIELD_SCHEDULES) return 0;
            store_default(f, c);
            continue;
        }
        if (!fast_field(f, t, c)) return 0;
    }
    return 1;
}

int ct_codec_decode(const char *buf, size_t len, ct_cmd *out, ct_error *err) {
    if (ct_codec_decode_fast(buf, len, out)) return ct_cmd_validate(out, err);
    return ct_codec_decode_general(buf, len, out, err);
}

int ct_codec_decode_general(const char *buf, size_t len, ct_cmd *out, ct_error *err) {
    if (len > CT_INPUT_RECORD_BYTES_MAX)
        BAD("record: %zu bytes exceed the limit of %d", len, CT_INPUT_RECORD_BYTES_MAX);
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        CT_ERR(err, CT_ERR_PERMANENT, "record: not valid JSON");
        ct_error_detail(err, "%s at byte %d", jerr.text, jerr.position);
        return -1;
    }
    int rc = decode_root(root, out, err);
    json_decref(root);
    if (rc) return -1;
    return ct_cmd_validate(out, err);
}

int ct_codec_decode_envelope(const char *buf, size_t len, ct_cmd *out) {
    memset(out, 0, sizeof *out);
    if (!buf || len > CT_INPUT_RECORD_BYTES_MAX) return -1;
    json_t *root = json_loadb(buf, len, 0, NULL);
    json_t *id = json_object_get(root, "id"), *type = json_object_get(root, "type");
    json_t *cid = json_object_get(root, "command_id"), *key = json_object_get(root, "key");
    json_t *ts = json_object_get(root, "ts");
    int rc = -1;
    if (json_is_string(id) && json_is_string(type) && json_is_string(cid) && json_is_string(key) &&
        ct_record_id_valid(json_string_value(id), json_string_length(id)) &&
        ct_id_setn(&out->command_id, json_string_value(cid), json_string_length(cid)) == 0 &&
        ct_id_setn(&out->key, json_string_value(key), json_string_length(key)) == 0 &&
        (out->type = ct_cmd_type_from_name(json_string_value(type))) != CT_CMD_NONE) {
        out->id_len = (uint8_t)json_string_length(id);
        memcpy(out->id, json_string_value(id), out->id_len + 1u);
        if (json_is_integer(ts) && json_integer_value(ts) >= 0 && json_integer_value(ts) <= CT_TS_MS_MAX)
            out->ts_ms = json_integer_value(ts);
        rc = 0;
    }
    json_decref(root);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

/* ---- encoding -------------------------------------------------------- */

typedef struct jw {
    char *b;
    size_t cap, n;
    bool full;
    bool first; /* no field yet in the current object */
} jw;

static void raw(jw *w, const char *s, size_t n) {
    if (w->full || w->cap - w->n < n) {
        w->full = true;
        return;
    }
    memcpy(w->b + w->n, s, n);
    w->n += n;
}
static void lit(jw *w, const char *s) { raw(w, s, strlen(s)); }

static void i64(jw *w, int64_t v) {
    char t[24];
    int i = sizeof t;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        t[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) t[--i] = '-';
    raw(w, t + i, sizeof t - (size_t)i);
}

static void str(jw *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    raw(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        raw(w, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        if (ch == '"' || ch == '\\') {
            e[1] = (char)ch;
            raw(w, e, 2);
        } else if (ch == '\n') {
            raw(w, "\\n", 2);
        } else if (ch == '\t') {
            raw(w, "\\t", 2);
        } else if (ch == '\r') {
            raw(w, "\\r", 2);
        } else {
            raw(w, e, 6);
        }
    }
    raw(w, s + run, n - run);
    raw(w, "\"", 1);
}

static void key(jw *w, const char *k) {
    if (!w->first) raw(w, ",", 1);
    w->first = false;
    raw(w, "\"", 1);
    lit(w, k);
    raw(w, "\":", 2);
}
static void f_str(jw *w, const char *k, const char *s) {
    key(w, k);
    str(w, s, strlen(s));
}
static void f_id(jw *w, const char *k, const ct_id *id) {
    key(w, k);
    str(w, id->s, id->len);
}
static void f_int(jw *w, const char *k, int64_t v) {
    key(w, k);
    i64(w, v);
}
static void f_bool(jw *w, const char *k, bool v) {
    key(w, k);
    lit(w, v ? "true" : "false");
}
static void f_reason(jw *w, const char *k, ct_reason r) {
    key(w, k);
    const char *s = ct_reason_name(r);
    if (s)
        str(w, s, strlen(s));
    else
        lit(w, "null");
}

size_t ct_codec_output_id(const char *input_id, uint32_t index, char *buf) {
    jw w = {.b = buf, .cap = CT_OUTPUT_ID_BYTES_MAX};
    size_t n = strlen(input_id);
    raw(&w, input_id, n > CT_RECORD_ID_BYTES_MAX ? CT_RECORD_ID_BYTES_MAX : n);
    raw(&w, ":", 1);
    i64(&w, index);
    buf[w.n] = '\0';
    return w.n;
}

/* The rejected command's fields a CommandRejected repeats, as in its own
 * data (ct_out_rejected_slot). */
static void rejected_fields(jw *w, const ct_out *o) {
    for (const ct_field *f = ct_cmd_fields(o->rejected_type); f->name; f++) {
        ptrdiff_t slot = ct_out_rejected_slot(f);
        if (slot < 0) continue;
        const char *p = (const char *)o + slot;
        if (f->kind == CT_FIELD_ID) {
            f_id(w, f->name, (const ct_id *)(const void *)p);
        } else if (f->kind == CT_FIELD_U32) {
            uint32_t v;
            memcpy(&v, p, sizeof v);
            f_int(w, f->name, v);
        } else {
            int64_t v;
            memcpy(&v, p, sizeof v);
            f_int(w, f->name, v);
        }
    }
}

static int data(jw *w, const ct_out *o) {
    switch (o->type) {
    case CT_OUT_CONCERT_CREATED:
        f_id(w, "concert_id", &o->concert_id);
        key(w, "title");
        str(w, o->title, o->title_len);
        f_int(w, "max_active", o->max_active);
        f_int(w, "active_ttl_ms", o->active_ttl_ms);
        f_int(w, "hold_ttl_ms", o->hold_ttl_ms);
        f_int(w, "schedule_count", o->schedule_count);
        break;
    case CT_OUT_SCHEDULE_CREATED:
        f_id(w, "concert_id", &o->concert_id);
        f_id(w, "schedule_id", &o->schedule_id);
        f_int(w, "starts_at", o->starts_at_ms);
        f_int(w, "seats", o->seats);
        f_int(w, "price", o->amount_won);
        break;
    case CT_OUT_TOKEN_ISSUED:
    case CT_OUT_TOKEN_ACTIVATED:
    case CT_OUT_TOKEN_EXPIRED:
    case CT_OUT_TOKEN_DONE:
        f_id(w, "token", &o->token);
        f_id(w, "user_id", &o->user_id);
        f_id(w, "concert_id", &o->concert_id);
        f_int(w, "seq", (int64_t)o->seq);
        f_str(w, "status", ct_token_status_name(o->token_status) ? ct_token_status_name(o->token_status) : "");
        if (o->type == CT_OUT_TOKEN_ISSUED) f_int(w, "position", (int64_t)o->position);
        if (o->type == CT_OUT_TOKEN_ISSUED || o->type == CT_OUT_TOKEN_ACTIVATED) {
            key(w, "active_until");
            if (o->token_status == CT_TOKEN_ACTIVE)
                i64(w, o->until_ms);
            else
                lit(w, "null");
        }
        break;
    case CT_OUT_SEAT_HELD:
    case CT_OUT_SEAT_HOLD_EXPIRED:
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "concert_id", &o->concert_id);
        f_id(w, "schedule_id", &o->schedule_id);
        f_int(w, "seat_no", o->seat_no);
        f_id(w, "user_id", &o->user_id);
        f_id(w, "token", &o->token);
        f_int(w, "hold_until", o->until_ms);
        if (o->type == CT_OUT_SEAT_HELD) f_int(w, "price", o->amount_won);
        break;
    case CT_OUT_PAYMENT_REQUESTED:
    case CT_OUT_DEBIT_REQUESTED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "user_id", &o->user_id);
        f_id(w, "concert_id", &o->concert_id);
        f_int(w, "amount", o->amount_won);
        break;
    case CT_OUT_SEAT_SOLD:
    case CT_OUT_RESERVATION_CONFIRMED:
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "concert_id", &o->concert_id);
        f_id(w, "schedule_id", &o->schedule_id);
        f_int(w, "seat_no", o->seat_no);
        f_id(w, "user_id", &o->user_id);
        if (o->type == CT_OUT_RESERVATION_CONFIRMED) f_id(w, "token", &o->token);
        f_int(w, "amount", o->amount_won);
        break;
    case CT_OUT_PAYMENT_FAILED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "concert_id", &o->concert_id);
        f_id(w, "user_id", &o->user_id);
        f_int(w, "amount", o->amount_won);
        f_reason(w, "reason", o->reason);
        f_int(w, "hold_until", o->until_ms);
        break;
    case CT_OUT_SETTLEMENT_REJECTED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "user_id", &o->user_id);
        f_int(w, "amount", o->amount_won);
        f_bool(w, "ok", o->ok);
        f_reason(w, "reason", o->reason);
        break;
    case CT_OUT_COMMAND_REJECTED:
        if (!ct_cmd_type_name(o->rejected_type)) return -1;
        f_str(w, "command_type", ct_cmd_type_name(o->rejected_type));
        f_reason(w, "reason", o->reason);
        /* A poisoned command's data did not decode: its envelope is all. */
        if (o->reason != CT_REASON_POISON) rejected_fields(w, o);
        break;
    case CT_OUT_BALANCE_CHARGED:
        f_id(w, "user_id", &o->user_id);
        f_int(w, "amount", o->amount_won);
        f_int(w, "balance", o->balance_won);
        break;
    case CT_OUT_BALANCE_DEBITED:
    case CT_OUT_DEBIT_REJECTED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "user_id", &o->user_id);
        f_id(w, "concert_id", &o->concert_id);
        f_int(w, "amount", o->amount_won);
        f_int(w, "balance", o->balance_won);
        if (o->type == CT_OUT_DEBIT_REJECTED) f_reason(w, "reason", o->reason);
        break;
    case CT_OUT_BALANCE_REFUNDED:
    case CT_OUT_REFUND_REJECTED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "user_id", &o->user_id);
        f_int(w, "amount", o->amount_won);
        f_int(w, "balance", o->balance_won);
        f_reason(w, "reason", o->reason);
        break;
    case CT_OUT_PAYMENT_SETTLED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "reservation_id", &o->reservation_id);
        f_id(w, "user_id", &o->user_id);
        f_int(w, "amount", o->amount_won);
        f_bool(w, "ok", o->ok);
        if (!o->ok) f_reason(w, "reason", o->reason);
        break;
    case CT_OUT_REFUND_REQUESTED:
        f_id(w, "payment_id", &o->payment_id);
        f_id(w, "user_id", &o->user_id);
        f_int(w, "amount", o->amount_won);
        f_reason(w, "reason", o->reason);
        break;
    case CT_OUT_NONE:
    case CT_OUT_TYPE_COUNT_: return -1;
    }
    /* Events say whether they end their command; commands to the other
     * role never do and keep exactly their command's fields. */
    if (o->topic == CT_TOPIC_ID_CONCERT_EVENTS || o->topic == CT_TOPIC_ID_WALLET_EVENTS)
        f_bool(w, "terminal", o->terminal);
    return 0;
}

int ct_codec_encode_out(const ct_out *o, const char *input_id, char *buf, size_t cap, size_t *len, ct_error *err) {
    const char *type = ct_out_type_name(o->type);
    if (!type || !ct_topic_name(o->topic)) {
        CT_ERR(err, CT_ERR_FATAL, "encode: invalid output type %d or topic %d", (int)o->type, (int)o->topic);
        return -1;
    }
    jw w = {.b = buf, .cap = cap, .first = true};
    char id[CT_OUTPUT_ID_BYTES_MAX + 1];
    size_t idn = ct_codec_output_id(input_id, o->index, id);
    raw(&w, "{", 1);
    key(&w, "id");
    str(&w, id, idn);
    f_str(&w, "type", type);
    f_int(&w, "v", CT_CODEC_VERSION);
    f_int(&w, "ts", o->ts_ms);
    f_id(&w, "command_id", &o->command_id);
    f_id(&w, "key", &o->key);
    key(&w, "data");
    raw(&w, "{", 1);
    w.first = true;
    if (data(&w, o)) {
        CT_ERR(err, CT_ERR_FATAL, "encode: output type %s has no encoding", type);
        return -1;
    }
    raw(&w, "}}", 2);
    if (w.full) {
        CT_ERR(err, CT_ERR_FATAL, "encode: %s does not fit %zu bytes", type, cap);
        return -1;
    }
    if (w.n < cap) buf[w.n] = '\0';
    *len = w.n;
    return 0;
}

int ct_codec_encode_effect(const ct_effects *fx, size_t i, char *buf, size_t cap, size_t *len, ct_error *err) {
    return ct_codec_encode_out(ct_effects_output_at(fx, i), ct_effects_input_id(fx), buf, cap, len, err);
}
