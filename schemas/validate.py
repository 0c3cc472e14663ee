#!/usr/bin/env python3
"""Validates JSON records, one per line, against a JSON Schema.

    validate.py SCHEMA RECORDS.jsonl [--require-types T1,T2,...]
    validate.py --self-test

Prints one line per invalid record, a count per record type, and a closing
"N passed, M failed" line; exits 1 if any record is invalid, if a required
type never occurred, or if the file holds no record at all.
"""
import json
import sys
from collections import Counter

import jsonschema


def validate(schema_path, records_path, require_types=()):
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    passed = failed = 0
    types = Counter()
    with open(records_path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"line {n}: not JSON: {e}")
                failed += 1
                continue
            errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
            if errors:
                failed += 1
                for e in errors[:3]:
                    where = "/".join(str(p) for p in e.path) or "(record)"
                    print(f"line {n} ({record.get('type')}): {where}: {e.message}")
            else:
                passed += 1
                types[record["type"]] += 1
    for t, c in sorted(types.items()):
        print(f"  {t}: {c}")
    missing = [t for t in require_types if t not in types]
    if missing:
        print("types never seen: " + ", ".join(missing))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 and not missing else 1


def self_test():
    """The validator must reject what the schema forbids."""
    import os
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    good = ('{"id":"a:0","type":"BalanceCharged","v":1,"ts":5,"command_id":"a","key":"u1",'
            '"data":{"user_id":"u1","amount":10,"balance":10,"terminal":true}}')
    bad = [
        good.replace('"amount":10', '"amount":-1'),             # below minimum
        good.replace(',"terminal":true', ''),                   # required field missing
        good.replace('"terminal":true', '"terminal":true,"x":1'),  # unknown field
        good.replace('"BalanceCharged"', '"NoSuchEvent"'),      # unknown type
        good.replace('"key":"u1"', '"key":"u 1"'),              # id format
    ]
    results = []
    for lines, want in (([good], 0), *(([b], 1) for b in bad)):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        got = validate(os.path.join(here, "events.json"), f.name)
        os.unlink(f.name)
        results.append(got == want)
    ok = sum(results)
    print(f"self-test: {ok} passed, {len(results) - ok} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    req = ()
    if len(sys.argv) == 5 and sys.argv[3] == "--require-types":
        req = tuple(t for t in sys.argv[4].split(",") if t)
    sys.exit(validate(sys.argv[1], sys.argv[2], req))
