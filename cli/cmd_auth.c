/*
 * `concert auth token USER [--ttl S]`: prints a bearer token for USER (an
 * HS256 JWT, sub = USER, exp = now + S, default an hour) signed with the
 * key the ingress uses: CONCERT_AUTH_KEY, else <CONCERT_DATA_DIR>/auth.key
 * (which `concert up` creates). For local use, the walkthrough and tests;
 * a real deployment's users get theirs from its login service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "ct_auth.h"

#define TTL_DEFAULT_S 3600
#define TTL_MAX_S (366 * 24 * 3600)

static int usage(void) {
    fprintf(stderr, "usage: concert auth token USER [--ttl SECONDS]\n");
    return CT_EXIT_USAGE;
}

int ct_cmd_auth(const ct_config *cfg, int argc, char **argv) {
    if (argc < 3 || strcmp(argv[1], "token") != 0) return usage();
    const char *user = argv[2];
    long ttl = TTL_DEFAULT_S;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) {
            char *end = NULL;
            ttl = strtol(argv[++i], &end, 10);
            if (!end || *end || ttl < 1 || ttl > TTL_MAX_S) {
                fprintf(stderr, "error: --ttl: a whole number of seconds, 1..%d\n", TTL_MAX_S);
                return CT_EXIT_USAGE;
            }
        } else {
            return usage();
        }
    }
    char key[CT_AUTH_KEY_BYTES_MAX], tok[CT_AUTH_TOKEN_BYTES_MAX];
    ct_error err = {0};
    int found = ct_auth_key_load(cfg, false, key, &err);
    if (found < 0) return ct_cmd_fail("auth", &err);
    if (found == 0) {
        fprintf(stderr, "error: no CONCERT_AUTH_KEY and no %s/auth.key (concert up creates one)\n", cfg->data_dir);
        return CT_EXIT_FAILURE;
    }
    if (ct_auth_token_new(key, user, (int64_t)time(NULL), ttl, tok, sizeof tok, &err) != 0) {
        if (err.klass == CT_ERR_PERMANENT) {
            fprintf(stderr, "error: %s\n", err.msg);
            return CT_EXIT_USAGE;
        }
        return ct_cmd_fail("auth", &err);
    }
    printf("%s\n", tok);
    return CT_EXIT_OK;
}
