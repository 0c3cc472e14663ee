/* Validating records against the project's JSON Schemas with the project's
 * own validator (schemas/validate.py, Debian's python3-jsonschema), from a
 * test. Header-only; needs CT_SOURCE_DIR (the tests' CMake defines it). */
#ifndef CT_TEST_SCHEMA_H
#define CT_TEST_SCHEMA_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

/* Runs `validate.py schemas/<schema> <records> [--require-types <require>]`
 * (records: one JSON record per line; require: comma-separated types that
 * must occur, or NULL). Returns the validator's exit status: 0 when every
 * record is valid, the file is not empty and every required type occurred;
 * anything else (1, or 127 without python3) otherwise. Its report (one line
 * per invalid record, a count per type) goes into report[0..n). */
static inline int ct_test_schema_validate(const char *schema, const char *records, const char *require, char *report,
                                          size_t n) {
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s.report", records);
    snprintf(cmd, sizeof cmd, "python3 %s/schemas/validate.py %s/schemas/%s %s%s%s > %s 2>&1", CT_SOURCE_DIR,
             CT_SOURCE_DIR, schema, records, require ? " --require-types " : "", require ? require : "", out);
    int st = system(cmd);
    report[0] = '\0';
    FILE *f = fopen(out, "r");
    if (f) {
        size_t got = fread(report, 1, n - 1, f);
        report[got] = '\0';
        fclose(f);
    }
    remove(out);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
