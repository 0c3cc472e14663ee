#!/usr/bin/env python3
"""Checks recorded HTTP answers against an OpenAPI 3.1 document.

    openapi_check.py OPENAPI.json EXCHANGES.jsonl

EXCHANGES holds one JSON object per line: {"method", "path", "status",
"body"} (body: the parsed JSON answer, or null when it was not JSON). Each
answer must be documented (its path template, method and status) and, when
the document gives a JSON schema for it, validate against it (Draft 2020-12,
$refs into the document). Prints the failures, the operations seen, and
"N answers checked, M failed"; exits 1 on any failure or on no answer.
"""
import json
import re
import sys
import warnings

import jsonschema

# RefResolver is what Debian 12's jsonschema (4.10) has; newer ones warn.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def templates(doc):
    out = []
    for path, ops in doc["paths"].items():
        rx = "^" + "/".join("[^/]+" if seg.startswith("{") else re.escape(seg) for seg in path.split("/")) + "$"
        out.append((re.compile(rx), path, ops))
    return out


def main(doc_path, exchanges_path):
    doc = json.load(open(doc_path))
    resolver = jsonschema.RefResolver.from_schema(doc)
    tpl = templates(doc)
    checked = failed = 0
    seen = set()
    for n, line in enumerate(open(exchanges_path), 1):
        if not line.strip():
            continue
        ex = json.loads(line)
        path = ex["path"].split("?")[0]
        method = ex["method"].lower()
        match = [(p, ops) for rx, p, ops in tpl if rx.match(path)]
        # The most specific template (fewest parameters) wins: /v1/concerts vs /v1/concerts/{id}.
        match.sort(key=lambda m: m[0].count("{"))
        checked += 1
        if not match or method not in match[0][1]:
            print(f"line {n}: {ex['method']} {path}: not documented")
            failed += 1
            continue
        template, ops = match[0]
        resp = ops[method]["responses"].get(str(ex["status"])) or ops[method]["responses"].get("default")
        if resp is None:
            print(f"line {n}: {ex['method']} {template} answered {ex['status']}, which is not documented")
            failed += 1
            continue
        seen.add(f"{ex['method']} {template} {ex['status']}")
        schema = resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is None or ex["body"] is None:
            continue
        errors = list(jsonschema.Draft202012Validator(schema, resolver=resolver).iter_errors(ex["body"]))
        if errors:
            failed += 1
            for e in errors[:3]:
                where = "/".join(str(p) for p in e.path) or "(answer)"
                print(f"line {n}: {ex['method']} {template} {ex['status']}: {where}: {e.message[:200]}")
    for s in sorted(seen):
        print(f"  {s}")
    print(f"{checked} answers checked, {failed} failed, {len(seen)} documented answers seen")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
