#!/usr/bin/env python3
"""Static checks of kafka-compose.yml (DESIGN.md sections 2 and 10).

Docker need not run here: the file is parsed and its Kafka, Kafka UI and
Postgres services are checked against each other and against the host
settings its header comment tells users to export.

    python3 tests/compose/test_compose.py [path/to/kafka-compose.yml]

Prints `PASS name` or `FAIL name: reason` per check, then `N passed, M failed`;
exits 1 if any check failed. Needs only the standard library and PyYAML
(Debian: python3-yaml).
"""

import base64
import os
import re
import sys
import urllib.parse

import yaml

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "kafka-compose.yml")


class CheckFailed(Exception):
    pass


def require(cond, reason):
    if not cond:
        raise CheckFailed(reason)


# ---------------------------------------------------------------- parsing --

class Compose:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        self.doc = yaml.safe_load(self.text)
        if not isinstance(self.doc, dict):
            raise CheckFailed("top level is not a mapping")
        self.services = self.doc.get("services") or {}
        if not isinstance(self.services, dict):
            raise CheckFailed("services is not a mapping")
        self.header = header_comment(self.text)

    def brokers(self):
        """(name, service) of every apache/kafka service, in file order."""
        return [(n, s) for n, s in self.services.items()
                if isinstance(s, dict) and str(s.get("image", "")).startswith("apache/kafka")]

    def three_brokers(self):
        b = self.brokers()
        require(len(b) == 3, "expected 3 apache/kafka services, found %d" % len(b))
        return b


def header_comment(text):
    """The comment lines at the top of the file, '#' stripped."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            out.append(s[1:].strip())
        elif s:
            break
    return "\n".join(out)


def header_setting(header, name):
    values = set(re.findall(r"\b%s=(\S+)" % re.escape(name), header))
    require(values, "header comment does not give %s=..." % name)
    require(len(values) == 1, "header comment gives %s more than one value: %s" % (name, sorted(values)))
    return values.pop()


def env(service):
    e = service.get("environment") or {}
    if isinstance(e, list):
        d = {}
        for item in e:
            k, sep, v = str(item).partition("=")
            d[k] = v if sep else None
        return d
    require(isinstance(e, dict), "environment is neither a mapping nor a list")
    return {k: (None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in e.items()}


def env_get(name, service, key):
    v = env(service).get(key)
    require(v is not None and v != "", "%s: %s is not set" % (name, key))
    return v


def hostnames(name, service):
    """Names other containers on the compose network can reach the service by."""
    names = {name}
    for k in ("hostname", "container_name"):
        if service.get(k):
            names.add(str(service[k]))
    nets = service.get("networks")
    if isinstance(nets, dict):
        for cfg in nets.values():
            if isinstance(cfg, dict):
                names.update(str(a) for a in cfg.get("aliases") or [])
    return names


def split_hostport(hp):
    host, sep, port = hp.rpartition(":")
    require(sep and port.isdigit(), "'%s' is not host:port" % hp)
    return host.strip("[]"), int(port)


def listeners(name, service, key):
    """{LISTENER_NAME: (host, port)} from KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS."""
    out = {}
    for item in env_get(name, service, key).split(","):
        item = item.strip()
        m = re.fullmatch(r"([A-Za-z0-9_]+)://(.*)", item)
        require(m, "%s: %s entry '%s' is not NAME://host:port" % (name, key, item))
        lname = m.group(1).upper()
        require(lname not in out, "%s: %s names %s twice" % (name, key, lname))
        out[lname] = split_hostport(m.group(2))
    return out


def port_range(s):
    s = str(s)
    a, sep, b = s.partition("-")
    require(a.isdigit() and (not sep or b.isdigit()), "bad port '%s'" % s)
    lo, hi = int(a), int(b) if sep else int(a)
    return list(range(lo, hi + 1))


def published_ports(name, service):
    """[(host_port, container_port)] for every TCP port published to the host."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            if str(p.get("protocol", "tcp")) != "tcp" or p.get("published") in (None, ""):
                continue
            hosts, conts = port_range(p["published"]), port_range(p["target"])
        else:
            s = str(p)
            s, _, proto = s.partition("/")
            if proto and proto != "tcp":
                continue
            parts = s.rsplit(":", 2)
            if len(parts) == 1:  # container port only: random host port
                continue
            hosts, conts = port_range(parts[-2]), port_range(parts[-1])
        require(len(hosts) == len(conts) or len(hosts) == 1 or len(conts) == 1,
                "%s: port ranges of different lengths in %r" % (name, p))
        if len(conts) == 1 and len(hosts) > 1:  # host range onto one port: one of them
            conts = conts * len(hosts)
        out.extend(zip(hosts, conts))
    return out


def depends_on(service):
    d = service.get("depends_on") or []
    return set(d.keys()) if isinstance(d, dict) else set(str(x) for x in d)


# ----------------------------------------------------------------- checks --

def check_three_brokers(c):
    brokers = c.three_brokers()
    for name, s in brokers:
        require(str(s.get("image")).startswith("apache/kafka:"), "%s: image has no tag" % name)


def check_node_ids(c):
    ids = []
    for name, s in c.three_brokers():
        v = env_get(name, s, "KAFKA_NODE_ID")
        require(v.isdigit(), "%s: KAFKA_NODE_ID '%s' is not a number" % (name, v))
        ids.append(int(v))
    require(len(set(ids)) == len(ids), "node ids are not distinct: %s" % ids)
    require(sorted(ids) == [1, 2, 3], "node ids are %s, not 1..3" % sorted(ids))


def check_broker_controller(c):
    for name, s in c.three_brokers():
        roles = {r.strip() for r in env_get(name, s, "KAFKA_PROCESS_ROLES").split(",")}
        require(roles == {"broker", "controller"},
                "%s: KAFKA_PROCESS_ROLES is %s, not broker,controller" % (name, sorted(roles)))
        require(env_get(name, s, "KAFKA_CONTROLLER_LISTENER_NAMES").strip().upper() == "CONTROLLER",
                "%s: KAFKA_CONTROLLER_LISTENER_NAMES is not CONTROLLER" % name)


def check_quorum_voters(c):
    brokers = c.three_brokers()
    values = {env_get(n, s, "KAFKA_CONTROLLER_QUORUM_VOTERS").replace(" ", "") for n, s in brokers}
    require(len(values) == 1, "KAFKA_CONTROLLER_QUORUM_VOTERS differs between brokers: %s" % sorted(values))
    voters = {}
    for item in values.pop().split(","):
        m = re.fullmatch(r"(\d+)@(.+)", item)
        require(m, "voter '%s' is not id@host:port" % item)
        vid = int(m.group(1))
        require(vid not in voters, "voter id %d listed twice" % vid)
        voters[vid] = split_hostport(m.group(2))
    by_id = {}
    for name, s in brokers:
        v = env_get(name, s, "KAFKA_NODE_ID")
        require(v.isdigit(), "%s: KAFKA_NODE_ID '%s' is not a number" % (name, v))
        by_id[int(v)] = (name, s)
    require(set(voters) == set(by_id),
            "voter ids %s are not the node ids %s" % (sorted(voters), sorted(by_id)))
    for vid, (host, port) in voters.items():
        name, s = by_id[vid]
        require(host in hostnames(name, s),
                "voter %d is at host '%s', but node %d is service %s" % (vid, host, vid, name))
        ctl = listeners(name, s, "KAFKA_LISTENERS").get("CONTROLLER")
        require(ctl is not None, "%s: no CONTROLLER listener" % name)
        require(ctl[1] == port, "voter %d names port %d, %s's CONTROLLER listener is on %d"
                % (vid, port, name, ctl[1]))


def check_listeners(c):
    for name, s in c.three_brokers():
        ls = listeners(name, s, "KAFKA_LISTENERS")
        for ln in ("INTERNAL", "CONTROLLER", "EXTERNAL"):
            require(ln in ls, "%s: KAFKA_LISTENERS has no %s listener" % (name, ln))
        ports = [p for _, p in ls.values()]
        require(len(set(ports)) == len(ports), "%s: two listeners share a port: %s" % (name, ls))
        adv = listeners(name, s, "KAFKA_ADVERTISED_LISTENERS")
        for ln in ("INTERNAL", "EXTERNAL"):
            require(ln in adv, "%s: KAFKA_ADVERTISED_LISTENERS has no %s" % (name, ln))
        for ln in adv:
            require(ln in ls, "%s: advertises %s, which it does not listen on" % (name, ln))
        require(adv["INTERNAL"][0] in hostnames(name, s),
                "%s: INTERNAL advertised as host '%s', not the service's name" % (name, adv["INTERNAL"][0]))
        require(adv["INTERNAL"][1] == ls["INTERNAL"][1],
                "%s: INTERNAL advertised on port %d but listens on %d" % (name, adv["INTERNAL"][1], ls["INTERNAL"][1]))
        pmap = {}
        for item in env_get(name, s, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").split(","):
            k, sep, v = item.strip().partition(":")
            require(sep, "%s: bad security protocol map entry '%s'" % (name, item))
            pmap[k.strip().upper()] = v.strip().upper()
        for ln in ls:
            require(ln in pmap, "%s: listener %s has no security protocol mapped" % (name, ln))
        require(env_get(name, s, "KAFKA_INTER_BROKER_LISTENER_NAME").strip().upper() == "INTERNAL",
                "%s: KAFKA_INTER_BROKER_LISTENER_NAME is not INTERNAL" % name)


def external_advertised(c):
    """[(service, host, port)] of every broker's advertised EXTERNAL address."""
    out = []
    for name, s in c.three_brokers():
        adv = listeners(name, s, "KAFKA_ADVERTISED_LISTENERS")
        require("EXTERNAL" in adv, "%s: KAFKA_ADVERTISED_LISTENERS has no EXTERNAL" % name)
        out.append((name, adv["EXTERNAL"][0], adv["EXTERNAL"][1]))
    return out


def check_external_published(c):
    for name, host, port in external_advertised(c):
        s = c.services[name]
        ls = listeners(name, s, "KAFKA_LISTENERS")
        require("EXTERNAL" in ls, "%s: KAFKA_LISTENERS has no EXTERNAL" % name)
        pub = published_ports(name, s)
        require(any(h == port for h, _ in pub),
                "%s: advertises EXTERNAL on host port %d, which is not published (ports: %s)" % (name, port, pub))
        require((port, ls["EXTERNAL"][1]) in pub,
                "%s: host port %d does not lead to the EXTERNAL listener's port %d (ports: %s)"
                % (name, port, ls["EXTERNAL"][1], pub))
        require(host in ("localhost", "127.0.0.1"),
                "%s: EXTERNAL advertised as '%s', which the host cannot be assumed to resolve" % (name, host))


def check_external_ports_distinct(c):
    ports = [p for _, _, p in external_advertised(c)]
    require(len(set(ports)) == len(ports), "EXTERNAL ports are not distinct: %s" % ports)
    published = [h for n, _ in c.three_brokers() for h, _ in published_ports(n, c.services[n])]
    require(len(set(published)) == len(published), "brokers publish the same host port twice: %s" % published)


def check_replication_defaults(c):
    want = {
        "KAFKA_DEFAULT_REPLICATION_FACTOR": 3,
        "KAFKA_MIN_INSYNC_REPLICAS": 2,
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": 3,
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": 3,
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": 2,
    }
    for name, s in c.three_brokers():
        for key, value in want.items():
            v = env_get(name, s, key)
            require(v.isdigit() and int(v) == value, "%s: %s is %s, not %d" % (name, key, v, value))


def check_cluster_id(c):
    ids = {env_get(n, s, "CLUSTER_ID") for n, s in c.three_brokers()}
    require(len(ids) == 1, "brokers have different CLUSTER_IDs: %s" % sorted(ids))
    cid = ids.pop()
    try:
        raw = base64.urlsafe_b64decode(cid + "=" * (-len(cid) % 4))
    except Exception:
        raw = b""
    require(len(cid) == 22 and len(raw) == 16,
            "CLUSTER_ID '%s' is not a base64 UUID (kafka-storage.sh random-uuid)" % cid)


def check_ui_bootstrap(c):
    uis = [(n, s) for n, s in c.services.items()
           if isinstance(s, dict) and "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS" in env(s)]
    require(len(uis) == 1, "expected one Kafka UI service, found %d" % len(uis))
    ui, us = uis[0]
    got = {split_hostport(x.strip()) for x in env_get(ui, us, "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS").split(",")}
    for name, s in c.three_brokers():
        port = listeners(name, s, "KAFKA_LISTENERS")["INTERNAL"][1]
        require(any(h in hostnames(name, s) and p == port for h, p in got),
                "%s: bootstrap servers do not name %s on its INTERNAL port %d" % (ui, name, port))
    brokers = {n for n, _ in c.three_brokers()}
    for h, p in got:
        require(any(h in hostnames(n, c.services[n]) for n in brokers), "%s: unknown bootstrap host '%s'" % (ui, h))
    missing = brokers - depends_on(us)
    require(not missing, "%s: does not depend on %s" % (ui, sorted(missing)))


def check_postgres(c):
    pgs = [(n, s) for n, s in c.services.items()
           if isinstance(s, dict) and str(s.get("image", "")).startswith("postgres")]
    require(len(pgs) == 1, "expected one postgres service, found %d" % len(pgs))
    name, s = pgs[0]
    url = urllib.parse.urlsplit(header_setting(c.header, "CONCERT_PG_URL"))
    require(url.scheme in ("postgresql", "postgres"), "CONCERT_PG_URL scheme is '%s'" % url.scheme)
    pub = published_ports(name, s)
    require(any(cont == 5432 for _, cont in pub), "%s: container port 5432 is not published" % name)
    url_port = url.port or 5432
    require((url_port, 5432) in pub,
            "%s: CONCERT_PG_URL port %d is not published to 5432 (ports: %s)" % (name, url_port, pub))
    require(url.hostname in ("localhost", "127.0.0.1"), "CONCERT_PG_URL host is '%s', not localhost" % url.hostname)
    e = env(s)
    user = e.get("POSTGRES_USER") or "postgres"
    db = e.get("POSTGRES_DB") or user
    password = e.get("POSTGRES_PASSWORD")
    url_user = urllib.parse.unquote(url.username or "")
    url_password = urllib.parse.unquote(url.password or "")
    url_db = urllib.parse.unquote(url.path.lstrip("/"))
    require(url_user == user, "CONCERT_PG_URL user '%s' != POSTGRES_USER '%s'" % (url_user, user))
    require(password is not None and url_password == password,
            "CONCERT_PG_URL password does not match POSTGRES_PASSWORD")
    require(url_db == db, "CONCERT_PG_URL database '%s' != POSTGRES_DB '%s'" % (url_db, db))


def check_header_brokers(c):
    listed = [x.strip() for x in header_setting(c.header, "CONCERT_KAFKA_BROKERS").split(",") if x.strip()]
    require(len(set(listed)) == len(listed), "CONCERT_KAFKA_BROKERS lists a broker twice: %s" % listed)
    got = {split_hostport(x) for x in listed}
    want = {(h, p) for _, h, p in external_advertised(c)}
    fmt = lambda s: ",".join("%s:%d" % hp for hp in sorted(s, key=lambda hp: hp[1]))
    require(got == want, "CONCERT_KAFKA_BROKERS is %s, advertised EXTERNAL addresses are %s" % (fmt(got), fmt(want)))


CHECKS = [
    check_three_brokers,
    check_node_ids,
    check_broker_controller,
    check_quorum_voters,
    check_listeners,
    check_external_published,
    check_external_ports_distinct,
    check_replication_defaults,
    check_cluster_id,
    check_ui_bootstrap,
    check_postgres,
    check_header_brokers,
]


def main(argv):
    path = argv[1] if len(argv) > 1 else os.path.normpath(DEFAULT_PATH)
    passed = failed = 0
    try:
        compose = Compose(path)
    except Exception as e:  # unreadable or not YAML: every check fails with it
        compose, load_error = None, "%s: %s" % (path, e)
    for check in CHECKS:
        name = check.__name__[len("check_"):]
        try:
            if compose is None:
                raise CheckFailed(load_error)
            check(compose)
        except CheckFailed as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
        except Exception as e:  # a malformed value the check did not foresee
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            failed += 1
        else:
            print("PASS %s" % name)
            passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
