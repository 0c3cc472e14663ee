// The operator's console: one document for every page; this script draws the
// page its path names from the admin API (/v1/admin/...), which the session
// cookie opens. Data goes into the page as text (textContent), never as HTML.
"use strict";

// ---- helpers ----------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// Appends the children that are there (null and undefined are left out).
function add(parent, ...children) {
  for (const c of children.flat()) if (c !== undefined && c !== null) parent.append(c);
}

function show(v) {
  return v === undefined || v === null ? "" : String(v);
}

// A table: columns are [header, (row) => cell text or Node, class?].
function table(name, columns, rows, rowAttrs) {
  return el("table", { "data-table": name },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c[0])))),
    el("tbody", {}, rows.map((r) => el("tr", rowAttrs ? rowAttrs(r) : {},
      columns.map((c) => {
        const v = c[1](r);
        return el("td", { class: c[2] || null, "data-col": c[0] }, v instanceof Node ? v : show(v));
      })))));
}

function statusCell(s) {
  return el("span", { class: "status-" + s }, s);
}

function setStatus(text, isError) {
  const f = document.getElementById("status");
  if (!f) return;
  f.textContent = text;
  f.className = isError ? "error" : "";
}

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.method && opts.method !== "GET") {
    opts.headers["X-Concert-Console"] = "1";
    if (opts.body !== undefined) opts.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, opts);
  if (res.status === 401) {
    location.href = "/admin/login";
    throw new Error("logged out");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const msg = body.error ? body.error.code + ": " + body.error.message : "HTTP " + res.status;
    throw new Error(msg);
  }
  return body;
}

function params() {
  return new URLSearchParams(location.search);
}

// Changes the query string without reloading, then redraws.
function navigate(query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  history.pushState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
  draw();
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  return Math.floor(s / 60) + " min " + (s % 60) + " s";
}

// ---- pages --------------------------------------------------------------------

async function outboxPage(root) {
  const p = params();
  const status = p.get("status") || "";
  const after = p.get("after_id") || "";
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  if (after) q.set("after_id", after);
  const data = await api("/v1/admin/outbox?" + q);
  const filter = el("select", { id: "outbox-status", onchange: (e) => navigate({ status: e.target.value }) },
    ["", "PENDING", "SENT", "FAILED"].map((s) => el("option", { value: s, selected: s === status }, s || "all")));
  const retryAll = el("button", {
    id: "retry-all-failed",
    onclick: async () => {
      const r = await api("/v1/admin/outbox/retry", { method: "POST" });
      setStatus(r.retried + " FAILED rows set PENDING again");
      draw();
    },
  }, "Retry every FAILED row");
  const rows = data.rows || [];
  add(root, 
    el("h2", {}, "Outbox"),
    el("div", { class: "toolbar" },
      el("label", {}, "status", filter),
      el("label", {}, "from id",
        el("input", { id: "outbox-after", type: "number", min: "0", value: after,
                      onchange: (e) => navigate({ status, after_id: e.target.value }) })),
      retryAll),
    table("outbox", [
      ["id", (r) => r.id, "num"],
      ["type", (r) => r.type],
      ["key", (r) => r.partition_key],
      ["status", (r) => statusCell(r.status)],
      ["attempts", (r) => r.attempts, "num"],
      ["last error", (r) => r.last_error, "err"],
      ["created", (r) => r.created_at],
      ["sent", (r) => r.sent_at],
      ["partition", (r) => r.kafka_partition, "num"],
      ["offset", (r) => r.kafka_offset, "num"],
      ["", (r) => r.status === "FAILED"
        ? el("button", {
            class: "retry", "data-id": r.id,
            onclick: async () => {
              await api("/v1/admin/outbox/" + r.id + "/retry", { method: "POST" });
              setStatus("row " + r.id + " set PENDING again");
              draw();
            },
          }, "Retry")
        : ""],
    ], rows, (r) => ({ "data-id": r.id })),
    rows.length === 0 ? el("p", { class: "muted" }, "No rows.") : null,
    data.next_after_id ? el("button", { onclick: () => navigate({ status, after_id: data.next_after_id }) }, "Next page") : null);
}

function recordView(r) {
  const headers = Object.entries(r.headers || {}).map(([k, v]) => k + "=" + v).join("  ");
  const value = typeof r.value === "string" ? r.value : JSON.stringify(r.value, null, 2);
  return el("div", { class: "record", "data-partition": r.partition, "data-offset": r.offset },
    el("div", { class: "meta" },
      "partition " + r.partition + " · offset " + r.offset + " · " + new Date(r.timestamp).toISOString() +
      " · key " + (r.key === null ? "(none)" : r.key) + (headers ? " · " + headers : "")),
    el("pre", {}, value));
}

async function topicsPage(root) {
  const p = params();
  const topic = p.get("topic");
  const data = await api("/v1/admin/topics");
  add(root, el("h2", {}, "Topics"),
    el("p", { class: "muted" }, "Brokers: " + data.brokers.map((b) => b.id + " (" + b.host + ":" + b.port + ")").join(", ")));
  // Browsing one topic shows that topic's partitions only.
  const shown = topic ? data.topics.filter((t) => t.topic === topic) : data.topics;
  if (topic) add(root, el("p", {}, el("a", { href: "/admin/topics" }, "All topics")));
  for (const t of shown) {
    add(root, el("h3", {}, el("a", { href: "?topic=" + encodeURIComponent(t.topic) }, t.topic)),
      table("partitions:" + t.topic, [
        ["partition", (x) => x.partition, "num"],
        ["leader", (x) => x.leader, "num"],
        ["replicas", (x) => x.replicas.join(",")],
        ["ISR", (x) => x.isr.join(",")],
        ["low", (x) => x.low, "num"],
        ["high", (x) => x.high, "num"],
        ["records", (x) => x.records, "num"],
        ["", (x) => el("a", { href: "?topic=" + encodeURIComponent(t.topic) + "&partition=" + x.partition }, "browse")],
      ], t.partitions));
  }
  if (!topic) return;
  // Browsing one topic: above the list, so it is what the page opens on.
  const view = el("section", { class: "card", id: "browse" });
  root.prepend(view);
  const partition = p.get("partition") || "";
  const offset = p.get("offset") || "";
  const key = p.get("key") || "";
  const form = el("form", {
    class: "toolbar",
    onsubmit: (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      navigate({ topic, partition: f.get("partition"), offset: f.get("offset"), key: f.get("key") });
    },
  },
  el("label", {}, "partition", el("input", { name: "partition", type: "number", min: "0", value: partition })),
  el("label", {}, "from offset (empty: latest)", el("input", { name: "offset", type: "number", min: "0", value: offset })),
  el("label", {}, "or search by key", el("input", { name: "key", value: key })),
  el("button", { type: "submit" }, "Show"));
  add(view, el("h2", {}, "Records of " + topic + " (read_committed)"), form);
  if (topic === "test-topic") {
    const result = el("span", { id: "produce-result" });
    add(view, el("form", {
      class: "toolbar", id: "produce",
      onsubmit: async (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        const r = await api("/v1/admin/topics/test-topic/records", {
          method: "POST", body: JSON.stringify({ key: f.get("key") || null, value: f.get("value") }),
        });
        result.textContent = "produced to partition " + r.partition + " at offset " + r.offset;
      },
    },
    el("label", {}, "key", el("input", { name: "key" })),
    el("label", {}, "value", el("input", { name: "value", required: true, value: "hello from the console" })),
    el("button", { type: "submit" }, "Produce a test record"), result));
  }
  if (partition === "" && key === "") {
    add(view, el("p", { class: "muted" }, "Pick a partition, or search by key."));
    return;
  }
  const q = new URLSearchParams({ limit: "50" });
  if (partition !== "") q.set("partition", partition);
  if (offset !== "" && key === "") q.set("offset", offset);
  if (key !== "") q.set("key", key);
  const recs = await api("/v1/admin/topics/" + encodeURIComponent(topic) + "/records?" + q);
  add(view, el("p", { class: "muted", id: "records-summary" },
    recs.records.length + " records" + (key ? " with key " + key + " among the latest " + recs.scanned + " read" : "")),
    el("div", { id: "records" }, recs.records.map(recordView)));
}

async function consumersPage(root) {
  const data = await api("/v1/admin/consumers");
  add(root, el("h2", {}, "Consumer groups"));
  for (const g of data.groups) {
    const lag = g.partitions.reduce((s, x) => s + (x.lag || 0), 0);
    add(root, el("section", { class: "card", "data-group": g.group },
      el("h3", {}, g.group + " ", statusCell(g.state)),
      el("div", { class: "figures" },
        el("div", {}, el("b", { "data-figure": "lag" }, lag), el("span", {}, "records behind")),
        el("div", {}, el("b", {}, g.members.length), el("span", {}, "members"))),
      g.error ? el("p", { class: "error" }, g.error) : null,
      table("members:" + g.group, [
        ["client", (m) => m.client_id],
        ["instance", (m) => m.instance_id],
        ["host", (m) => m.host],
        ["owns", (m) => m.assignment.map((a) => a.topic + "/" + a.partition).join(" ")],
      ], g.members),
      table("lag:" + g.group, [
        ["topic", (x) => x.topic],
        ["partition", (x) => x.partition, "num"],
        ["committed", (x) => x.committed, "num"],
        ["end", (x) => x.high, "num"],
        ["lag", (x) => x.lag, "num"],
        ["owner", (x) => x.owner],
      ], g.partitions)));
  }
}

async function queuesPage(root) {
  const data = await api("/v1/admin/queues");
  add(root, el("h2", {}, "Queues and sales"));
  if (data.concerts.length === 0) add(root, el("p", { class: "muted" }, "No concerts yet."));
  for (const c of data.concerts) {
    add(root, el("section", { class: "card", "data-concert": c.concert_id },
      el("h3", {}, c.title + " ", el("span", { class: "muted" }, c.concert_id)),
      el("div", { class: "figures" },
        el("div", {}, el("b", { "data-figure": "waiting" }, c.waiting), el("span", {}, "waiting")),
        el("div", {}, el("b", { "data-figure": "active" }, c.active), el("span", {}, "active of " + c.max_active)),
        el("div", {}, el("b", { "data-figure": "done" }, c.done), el("span", {}, "done")),
        el("div", {}, el("b", { "data-figure": "admitted" }, c.admitted_last_minute), el("span", {}, "admitted in the last minute")),
        el("div", {}, el("b", { "data-figure": "wait" }, c.estimated_wait_ms === null ? "-" : fmtMs(c.estimated_wait_ms)),
          el("span", {}, "estimated wait at the back"))),
      table("schedules:" + c.concert_id, [
        ["schedule", (s) => s.schedule_id],
        ["starts", (s) => s.starts_at_rfc3339 || s.starts_at],
        ["seats", (s) => s.seats, "num"],
        ["sold", (s) => s.sold, "num"],
        ["held", (s) => s.held, "num"],
        ["left", (s) => s.seats_left, "num"],
        ["price", (s) => s.price, "num"],
        ["revenue", (s) => s.revenue, "num"],
      ], c.schedules)));
  }
}

async function slackPage(root) {
  const status = params().get("status") || "";
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  const data = await api("/v1/admin/slack?" + q);
  add(root, el("h2", {}, "Slack notifications"),
    el("div", { class: "figures" }, el("div", {}, el("b", { "data-figure": "pending" }, data.pending), el("span", {}, "not delivered yet"))),
    el("div", { class: "toolbar" }, el("label", {}, "status",
      el("select", { id: "slack-status", onchange: (e) => navigate({ status: e.target.value }) },
        ["", "PENDING", "DELIVERED"].map((s) => el("option", { value: s, selected: s === status }, s || "all"))))),
    table("slack", [
      ["id", (n) => n.id, "num"],
      ["kind", (n) => n.kind],
      ["status", (n) => statusCell(n.status)],
      ["attempts", (n) => n.attempts, "num"],
      ["last error", (n) => n.last_error, "err"],
      ["created", (n) => n.created_at],
      ["delivered", (n) => n.sent_at],
      ["next attempt", (n) => n.next_attempt_at],
      ["text", (n) => el("pre", {}, n.text)],
    ], data.notifications, (n) => ({ "data-id": n.id })),
    data.notifications.length === 0 ? el("p", { class: "muted" }, "No notifications.") : null);
}

const PAGES = { outbox: outboxPage, topics: topicsPage, consumers: consumersPage, queues: queuesPage, slack: slackPage };

function pageName() {
  const name = location.pathname.replace(/^\/admin\/?/, "");
  return PAGES[name] ? name : "outbox";
}

let drawing = null;

async function draw() {
  const root = document.getElementById("page");
  const name = pageName();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === name);
  document.title = "concert console: " + name;
  const next = el("div", {});
  const run = (drawing = PAGES[name](next));
  try {
    await run;
    if (run !== drawing) return; // a newer draw started
    root.replaceChildren(next);
    root.dataset.loaded = name;
    setStatus("as of " + new Date().toISOString());
  } catch (e) {
    if (run !== drawing) return;
    root.replaceChildren(next, el("p", { class: "error", id: "page-error" }, String(e.message || e)));
    root.dataset.loaded = name;
    setStatus("error: " + (e.message || e), true);
  }
}

function start() {
  if (document.body.classList.contains("login")) {
    if (params().get("failed")) document.getElementById("login-error").hidden = false;
    return;
  }
  window.addEventListener("popstate", draw);
  let timer = null;
  document.getElementById("auto-refresh").addEventListener("change", (e) => {
    clearInterval(timer);
    timer = e.target.checked ? setInterval(draw, 5000) : null;
  });
  draw();
}

document.addEventListener("DOMContentLoaded", start);
