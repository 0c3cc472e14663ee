#!/usr/bin/env python3
"""Per-hop latencies of traced commands (CONCERT_TRACE_SAMPLE).

    bench/trace_report.py LOG...        (or the log on stdin)

Reads the `trace: cmd=<id> hop=<hop> us=<µs>` lines every component logs
for the sampled commands, orders each command's hops by time, groups the
commands by the path they took (a charge crosses the wallet processor once,
a payment the concert processor twice and the wallet once), and prints for
each path how long each step took from the previous one: n, p50, p99, p999
and mean in ms, and the whole path from ingress.accept to the answer. A
processor's hops after the projector read the outcome (a payment's
settlement) are listed after the answer, which did not wait for them.
A hop seen twice in one command is numbered (concert.consume#2)."""
import collections
import signal
import re
import sys

RANK = {"ingress.accept": 0, "ingress.commit": 1, "relay.claim": 2, "relay.publish": 3,
        "projector.consume": 5, "projector.commit": 6, "ingress.notify": 7, "ingress.answer": 8}
LINE = re.compile(r"trace: cmd=(\S+) hop=(\S+) us=(\d+)")


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, int(-(-p * len(sorted_vals) // 1)) - 1))
    return sorted_vals[i]


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # piped into head
    cmds = collections.defaultdict(list)
    files = [open(f, errors="replace") for f in sys.argv[1:]] or [sys.stdin]
    for f in files:
        for line in f:
            m = LINE.search(line)
            if m:
                cmds[m.group(1)].append((int(m.group(3)), m.group(2)))
    paths = collections.defaultdict(list)
    for hops in cmds.values():
        # Pipeline order first (NOTIFY reaches the ingress before the
        # projector's COMMIT returns), then time: a command crosses the
        # processors in time order.
        # A processor's hop after the projector read the outcome is work
        # the answer did not wait for (a payment's settlement, which
        # follows the wallet's decision): after the answer.
        seen_at = min((us for us, hop in hops if hop == "projector.consume"), default=None)
        hops.sort(key=lambda h: (RANK.get(h[1], 9 if seen_at is not None and h[0] > seen_at else 4), h[0]))
        seen = collections.Counter()
        named = []
        for us, hop in hops:
            seen[hop] += 1
            named.append((us, hop if seen[hop] == 1 else "%s#%d" % (hop, seen[hop])))
        if named[0][1] != "ingress.accept" or "ingress.answer" not in (h for _, h in named):
            continue  # not whole: a write without Prefer: wait, or cut by the log's ends
        paths[tuple(h for _, h in named)].append(named)
    if not paths:
        print("no complete traced command (set CONCERT_TRACE_SAMPLE and use Prefer: wait)")
        return 1
    for path, samples in sorted(paths.items(), key=lambda kv: -len(kv[1])):
        print("path (%d commands): %s" % (len(samples), " > ".join(path)))
        print("  %-44s %7s %9s %9s %9s %9s" % ("step", "n", "p50 ms", "p99 ms", "p999 ms", "mean ms"))
        rows = [("%s -> %s" % (path[i - 1], path[i]), i - 1, i) for i in range(1, len(path))]
        answer = path.index("ingress.answer")
        rows.append(("whole: %s -> %s" % (path[0], path[answer]), 0, answer))
        for name, a, b in rows:
            d = sorted((s[b][0] - s[a][0]) / 1000.0 for s in samples)
            print("  %-44s %7d %9.1f %9.1f %9.1f %9.1f" % (name, len(d), pct(d, 0.50), pct(d, 0.99),
                                                          pct(d, 0.999), sum(d) / len(d)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
