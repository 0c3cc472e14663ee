/* The exactly-once processors on the real local Kafka cluster, as the
 * `concert processor` processes users run: commands in, events out, exactly
 * one terminal outcome per command, the payment saga across the two roles,
 * a duplicated command record applied once, a malformed record
 * dead-lettered while processing goes on, and a client command whose data
 * does not decode dead-lettered and still answered, once (POISON). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/ct_test_kafka.h"
#include "../support/ct_test_model.h"
#include "ct_proc.h"

#define WAIT_MS 90000

static ct_config cfg;
static char run[32], dir[96];

static pid_t start_processor(const char *role) {
    char inst[48], log[160];
    snprintf(inst, sizeof inst, "t%s", run);
    snprintf(log, sizeof log, "%s/%s.log", dir, role);
    return ct_test_start_processor(role, inst, log);
}

static void send_record(rd_kafka_t *p, const char *topic, const char *key, const char *json) {
    cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                   RD_KAFKA_V_VALUE((void *)json, strlen(json)),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 0);
}

static char *cmd(const char *name, const char *type, int64_t ts, const char *key, const char *data) {
    return ct_test_envelope(run, name, type, ts, key, data);
}

typedef struct outcome {
    char command[64];
    char type[48];
    char reason[48];
    int terminals;
    int records;
    int64_t ts; /* the terminal event's */
} outcome;

static outcome outcomes[64];
static int outcome_count;
static FILE *dump; /* every event of this run, for the schema check */

static outcome *outcome_of(const char *command_id) {
    for (int i = 0; i < outcome_count; i++)
        if (strcmp(outcomes[i].command, command_id) == 0) return &outcomes[i];
    cr_assert_lt(outcome_count, 64);
    outcome *o = &outcomes[outcome_count++];
    memset(o, 0, sizeof *o);
    snprintf(o->command, sizeof o->command, "%s", command_id);
    return o;
}

/* Reads events until `terminals` commands have their outcome, token 3 was
 * activated and the payment's ReservationConfirmed arrived: the payment's
 * outcome is the wallet's BalanceDebited, and the settlement's events on
 * concert.events follow it a hop later. */
static void collect(rd_kafka_t *c, int terminals, int *token_activated_t3) {
    int64_t deadline = ct_clock_mono_ms() + WAIT_MS;
    int have = 0, confirmed = 0;
    while ((have < terminals || *token_activated_t3 == 0 || confirmed == 0) && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (!m->err) {
            json_error_t je;
            json_t *ev = json_loadb(m->payload, m->len, 0, &je);
            if (!ev) { /* the topic is shared: the projector's tests put a malformed record there on purpose */
                rd_kafka_message_destroy(m);
                continue;
            }
            const char *cid = json_string_value(json_object_get(ev, "command_id"));
            const char *type = json_string_value(json_object_get(ev, "type"));
            json_t *data = json_object_get(ev, "data");
            if (cid && type && strncmp(cid, run, strlen(run)) == 0) {
                fprintf(dump, "%.*s\n", (int)m->len, (const char *)m->payload);
                outcome *o = outcome_of(cid);
                o->records++;
                if (strcmp(type, "TokenActivated") == 0 && strstr(cid, "-issue3")) (*token_activated_t3)++;
                if (strcmp(type, "ReservationConfirmed") == 0) confirmed++;
                if (json_is_true(json_object_get(data, "terminal"))) {
                    o->terminals++;
                    snprintf(o->type, sizeof o->type, "%s", type);
                    const char *r = json_string_value(json_object_get(data, "reason"));
                    snprintf(o->reason, sizeof o->reason, "%s", r ? r : "");
                    o->ts = (int64_t)json_integer_value(json_object_get(ev, "ts"));
                    if (o->terminals == 1) have++;
                }
            }
            json_decref(ev);
        }
        rd_kafka_message_destroy(m);
    }
}

static void expect(const char *name, const char *type, const char *reason) {
    char cid[64];
    snprintf(cid, sizeof cid, "%s-%s", run, name);
    outcome *o = outcome_of(cid);
    cr_assert_eq(o->terminals, 1, "%s: %d terminal outcomes", name, o->terminals);
    cr_assert_str_eq(o->type, type, "%s", name);
    if (reason) cr_assert_str_eq(o->reason, reason, "%s", name);
}

Test(processor, commands_in_events_out_one_terminal_each_saga_and_duplicates, .timeout = 300) {
    ct_test_setup_run(&cfg, "proc", run, sizeof run, dir, sizeof dir);
    ct_error err = {0};
    /* Processes first: this process must have no librdkafka thread at fork. */
    pid_t concert = start_processor("concert"), wallet = start_processor("wallet");

    char concert_id[40], events_group[64];
    snprintf(concert_id, sizeof concert_id, "c%s", run);
    snprintf(events_group, sizeof events_group, "ct-test-events-%s", run);
    static const char *const events[] = {CT_TOPIC_CONCERT_EVENTS, CT_TOPIC_WALLET_EVENTS, NULL};
    rd_kafka_t *c = ct_test_consumer_on(&cfg, events_group, 1, events);
    ct_kafka_producer_opts po = {.client_id = "ct-test", .linger_ms = 0};
    rd_kafka_t *p = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(p);

    int64_t ts = ct_clock_wall_ms();
    char data[512], user[3][40];
    for (int i = 0; i < 3; i++) snprintf(user[i], sizeof user[i], "u%d%s", i + 1, run);
    snprintf(data, sizeof data, "{\"user_id\":\"%s\",\"amount\":100000}", user[0]);
    char *charge = cmd("charge", "ChargeBalance", ts, user[0], data);
    send_record(p, CT_TOPIC_WALLET_COMMANDS, user[0], charge);
    cr_assert_eq(rd_kafka_flush(p, WAIT_MS), 0); /* charged before the payment is requested */
    snprintf(data, sizeof data,
             "{\"concert_id\":\"%s\",\"title\":\"t\",\"max_active\":2,\"schedules\":[{\"schedule_id\":\"1\","
             "\"starts_at\":1900000000000,\"seats\":10,\"price\":5000}]}",
             concert_id);
    char *create = cmd("create", "CreateConcert", ts + 1, concert_id, data);
    char *issue[3], *hold1, *hold2, *pay;
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "issue%d", i + 1);
        snprintf(data, sizeof data, "{\"token\":\"k%d%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\"}", i + 1, run,
                 user[i], concert_id);
        issue[i] = cmd(name, "IssueToken", ts + 2 + i, concert_id, data);
    }
    snprintf(data, sizeof data,
             "{\"reservation_id\":\"r1%s\",\"token\":\"k1%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
             "\"schedule_id\":\"1\",\"seat_no\":3}",
             run, run, user[0], concert_id);
    hold1 = cmd("hold1", "HoldSeat", ts + 10, concert_id, data);
    snprintf(data, sizeof data,
             "{\"reservation_id\":\"r2%s\",\"token\":\"k2%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
             "\"schedule_id\":\"1\",\"seat_no\":3}",
             run, run, user[1], concert_id);
    hold2 = cmd("hold2", "HoldSeat", ts + 11, concert_id, data);
    snprintf(data, sizeof data,
             "{\"payment_id\":\"p1%s\",\"reservation_id\":\"r1%s\",\"token\":\"k1%s\",\"user_id\":\"%s\","
             "\"concert_id\":\"%s\"}",
             run, run, run, user[0], concert_id);
    pay = cmd("pay", "RequestPayment", ts + 12, concert_id, data);
    char *poison_hold = cmd("poison-hold", "HoldSeat", ts + 13, concert_id, "{\"seat_no\":\"one\"}");
    char *poison_charge = cmd("poison-charge", "ChargeBalance", ts + 14, user[1], "{\"amount\":-1}");
    /* From a host whose clock is an hour fast. */
    snprintf(data, sizeof data, "{\"token\":\"k4%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\"}", run, user[2],
             concert_id);
    char *fast = cmd("fast-clock", "IssueToken", ts + 3600 * 1000, concert_id, data);

    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, create);
    for (int i = 0; i < 3; i++) send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, issue[i]);
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, issue[1]); /* the relay's redelivery */
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, "{not json");
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, hold1);
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, hold2);
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, pay);
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, poison_hold);
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, poison_hold); /* redelivered: answered once */
    send_record(p, CT_TOPIC_WALLET_COMMANDS, user[1], poison_charge);
    send_record(p, CT_TOPIC_CONCERT_COMMANDS, concert_id, fast);
    cr_assert_eq(rd_kafka_flush(p, WAIT_MS), 0);

    int activated = 0;
    char dump_path[160];
    snprintf(dump_path, sizeof dump_path, "%s/events.jsonl", dir);
    cr_assert_not_null(dump = fopen(dump_path, "w"));
    collect(c, 11, &activated);
    fclose(dump);
    ct_model_validate_file(dump_path,
                           "BalanceCharged,BalanceDebited,ConcertCreated,ScheduleCreated,TokenIssued,"
                           "TokenActivated,TokenDone,SeatHeld,PaymentRequested,SeatSold,ReservationConfirmed,"
                           "CommandRejected");
    expect("charge", "BalanceCharged", NULL);
    expect("create", "ConcertCreated", NULL);
    expect("issue1", "TokenIssued", NULL);
    expect("issue2", "TokenIssued", NULL);
    expect("issue3", "TokenIssued", NULL);
    expect("hold1", "SeatHeld", NULL);
    expect("hold2", "CommandRejected", "SEAT_TAKEN");
    expect("pay", "BalanceDebited", NULL);
    expect("poison-hold", "CommandRejected", "POISON");
    expect("poison-charge", "CommandRejected", "POISON");
    expect("fast-clock", "TokenIssued", NULL);
    char fid[64];
    snprintf(fid, sizeof fid, "%s-fast-clock", run);
    cr_assert_lt(outcome_of(fid)->ts, ct_clock_wall_ms() + 60 * 1000,
                 "a command stamped an hour ahead moved the partition's time to %lld (now %lld)",
                 (long long)outcome_of(fid)->ts, (long long)ct_clock_wall_ms());
    char cid[64];
    snprintf(cid, sizeof cid, "%s-issue2", run);
    cr_assert_eq(outcome_of(cid)->records, 1, "the duplicated IssueToken produced %d records",
                 outcome_of(cid)->records);
    snprintf(cid, sizeof cid, "%s-poison-hold", run);
    cr_assert_eq(outcome_of(cid)->records, 1, "the redelivered poison produced %d records", outcome_of(cid)->records);
    /* The payment finished token 1, which freed a slot for the waiting token 3. */
    cr_assert_eq(activated, 1, "token 3 activated %d times", activated);
    ct_test_consumer_close(c);

    /* The malformed record went to the dead-letter topic with its reason. */
    snprintf(events_group, sizeof events_group, "ct-test-dlq-%s", run);
    static const char *const dlq_topic[] = {CT_TOPIC_CONCERT_COMMANDS ".dlq", NULL};
    rd_kafka_t *d = ct_test_consumer_on(&cfg, events_group, 1, dlq_topic);
    bool dlq = false;
    int64_t until = ct_clock_mono_ms() + WAIT_MS;
    while (!dlq && ct_clock_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d, 200);
        if (!m) continue;
        if (!m->err && m->key_len == strlen(concert_id) && memcmp(m->key, concert_id, m->key_len) == 0) {
            rd_kafka_headers_t *h = NULL;
            const void *reason = NULL;
            size_t rl = 0;
            dlq = rd_kafka_message_headers(m, &h) == 0 &&
                  rd_kafka_header_get_last(h, "dlq-reason", &reason, &rl) == 0 && rl > 0 && m->len == 9;
        }
        rd_kafka_message_destroy(m);
    }
    ct_test_consumer_close(d);
    cr_assert(dlq, "no dead-lettered record with a reason");

    rd_kafka_destroy(p);
    char clog[160], wlog[160];
    snprintf(clog, sizeof clog, "%s/concert.log", dir);
    snprintf(wlog, sizeof wlog, "%s/wallet.log", dir);
    ct_test_stop_clean(concert, "the concert processor", clog);
    ct_test_stop_clean(wallet, "the wallet processor", wlog);
    free(charge), free(create), free(hold1), free(hold2), free(pay), free(poison_hold), free(poison_charge), free(fast);
    for (int i = 0; i < 3; i++) free(issue[i]);
    ct_test_cleanup_run(dir);
}

/* A charge published again long after (the outbox keeps a SENT row, and
 * may publish it again, for CONCERT_OUTBOX_RETENTION_S): with an applied-id
 * window of 3 offsets and 10 charges in between, the redelivery is still
 * recognised by its id (kept for the outbox's retention in log time) and
 * the balance is charged once. */
Test(processor, a_charge_redelivered_past_the_offset_window_is_applied_once, .timeout = 300) {
    ct_test_setup_run(&cfg, "procw", run, sizeof run, dir, sizeof dir);
    setenv("CONCERT_PROCESSOR_APPLIED_IDS_WINDOW", "3", 1);
    pid_t wallet = start_processor("wallet");
    char group[64], user[40], data[128], name[16];
    snprintf(group, sizeof group, "ct-test-window-%s", run);
    snprintf(user, sizeof user, "w%s", run);
    static const char *const events[] = {CT_TOPIC_WALLET_EVENTS, NULL};
    rd_kafka_t *c = ct_test_consumer_on(&cfg, group, 1, events);
    ct_error err = {0};
    ct_kafka_producer_opts po = {.client_id = "ct-test", .linger_ms = 0};
    rd_kafka_t *p = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(p);
    int64_t ts = ct_clock_wall_ms();
    snprintf(data, sizeof data, "{\"user_id\":\"%s\",\"amount\":100}", user);
    char *first = cmd("first", "ChargeBalance", ts, user, data);
    send_record(p, CT_TOPIC_WALLET_COMMANDS, user, first);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "between%d", i);
        char *b = cmd(name, "ChargeBalance", ts + 1 + i, user, data);
        send_record(p, CT_TOPIC_WALLET_COMMANDS, user, b);
        free(b);
    }
    cr_assert_eq(rd_kafka_flush(p, WAIT_MS), 0);
    int firsts = 0, charges = 0;
    long long balance = -1;
    char first_id[64], wait_id[64];
    snprintf(first_id, sizeof first_id, "%s-first", run);
    /* Until the tenth charge between is out (its batch committed, the first
     * id pruned by offsets), then the redelivery and a last charge. */
    bool done = false;
    for (int phase = 0; phase < 2; phase++) {
        snprintf(wait_id, sizeof wait_id, "%s-%s", run, phase == 0 ? "between9" : "last");
        if (phase == 1) {
            send_record(p, CT_TOPIC_WALLET_COMMANDS, user, first);
            char *last = cmd("last", "ChargeBalance", ts + 20, user, data);
            send_record(p, CT_TOPIC_WALLET_COMMANDS, user, last);
            free(last);
            cr_assert_eq(rd_kafka_flush(p, WAIT_MS), 0);
        }
        done = false;
        for (int64_t until = ct_clock_mono_ms() + WAIT_MS; !done && ct_clock_mono_ms() < until;) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
            if (!m) continue;
            json_t *ev = m->err ? NULL : json_loadb(m->payload, m->len, 0, NULL);
            const char *cid = json_string_value(json_object_get(ev, "command_id"));
            const char *type = json_string_value(json_object_get(ev, "type"));
            if (cid && type && strcmp(type, "BalanceCharged") == 0 && strncmp(cid, run, strlen(run)) == 0) {
                charges++;
                if (strcmp(cid, first_id) == 0) firsts++;
                if (strcmp(cid, wait_id) == 0) {
                    done = true;
                    balance = (long long)json_integer_value(json_object_get(json_object_get(ev, "data"), "balance"));
                }
            }
            json_decref(ev);
            rd_kafka_message_destroy(m);
        }
        cr_assert(done, "%s never came out", wait_id);
    }
    cr_assert_eq(firsts, 1, "the redelivered charge was applied %d times", firsts);
    cr_assert_eq(charges, 12);
    cr_assert_eq(balance, 1200, "balance %lld after 12 charges of 100", balance);
    ct_test_consumer_close(c);
    rd_kafka_destroy(p);
    char wlog[160];
    snprintf(wlog, sizeof wlog, "%s/wallet.log", dir);
    ct_test_stop_clean(wallet, "the wallet processor", wlog);
    unsetenv("CONCERT_PROCESSOR_APPLIED_IDS_WINDOW");
    free(first);
    ct_test_cleanup_run(dir);
}
