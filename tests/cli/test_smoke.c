/* `concert smoke` (STEP 17) against the running cluster: exit 0, and what
 * it printed as sent is what it printed as received. Against a broker list
 * where nothing listens it must fail, so the success above means something. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run(const char *cmd, char *out, size_t n) {
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t len = fread(out, 1, n - 1, f);
    out[len] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(smoke, sends_and_receives_test_message) {
    char out[8192];
    int code = run(CT_CONCERT_BIN " smoke 2>/dev/null", out, sizeof out);
    cr_assert_eq(code, 0, "concert smoke exited %d:\n%s", code, out);
    const char *sent = strstr(out, "sent:"), *recv = strstr(out, "received:");
    cr_assert(sent && recv, "output:\n%s", out);
    int sp = -1, rp = -2;
    long long so = -1, ro = -2;
    cr_assert_eq(sscanf(sent, "sent: topic=test-topic partition=%d offset=%lld", &sp, &so), 2, "%s", sent);
    cr_assert_eq(sscanf(recv, "received: topic=test-topic partition=%d offset=%lld", &rp, &ro), 2, "%s", recv);
    cr_assert_eq(sp, rp);
    cr_assert_eq(so, ro);
    cr_assert(strstr(recv, "value=test-message") != NULL);
}

Test(smoke, fails_when_no_broker_answers) {
    char out[8192];
    int code =
        run("CONCERT_KAFKA_BROKERS=127.0.0.1:9 " CT_CONCERT_BIN " smoke --timeout-ms 2000 2>&1", out, sizeof out);
    cr_assert_eq(code, 1, "exit %d:\n%s", code, out);
    cr_assert(strstr(out, "not delivered") != NULL, "%s", out);
}
