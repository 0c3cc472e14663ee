// Drives headless Chromium (Debian's) through the operator's console, as an
// operator would, and prints what each page showed as one JSON object on
// stdout; tests/e2e/test_console.c checks it against Postgres and Kafka.
//
//   node console.mjs <base url> <admin key> <screenshot dir> <json args>
//
// args: {failed_id, browse_topic, browse_partition, browse_offset, search_topic, search_key,
//        produce_key}. Exit 0 once every step ran (what it saw is the
// caller's to judge), 1 when a step could not run (its error on stderr).
import puppeteer from "puppeteer-core";
import { mkdirSync } from "node:fs";

const [base, adminKey, shots, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson || "{}");
const out = {};
mkdirSync(shots, { recursive: true });

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in CI cannot use Chromium's sandbox; /dev/shm may be small.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
const page = await browser.newPage();
await page.setViewport({ width: 1400, height: 900 });
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });

// Every table of the page: {name: [{header: cell text}]}; and the figures.
async function readPage() {
  return page.evaluate(() => {
    const tables = {};
    for (const t of document.querySelectorAll("table[data-table]")) {
      const heads = [...t.querySelectorAll("thead th")].map((th) => th.textContent);
      tables[t.dataset.table] = [...t.querySelectorAll("tbody tr")].map((tr) => {
        const row = {};
        [...tr.children].forEach((td, i) => { if (heads[i]) row[heads[i]] = td.textContent; });
        return row;
      });
    }
    const figures = {};
    for (const sec of document.querySelectorAll("[data-concert], [data-group]")) {
      const f = {};
      for (const b of sec.querySelectorAll("[data-figure]")) f[b.dataset.figure] = b.textContent;
      figures[sec.dataset.concert || sec.dataset.group] = f;
    }
    for (const b of document.querySelectorAll("body > main > div > .figures [data-figure]")) figures[b.dataset.figure] = b.textContent;
    const err = document.getElementById("page-error");
    return { tables, figures, error: err ? err.textContent : null, status: document.getElementById("status").textContent };
  });
}

async function open(path, name, shot) {
  await page.goto(base + path, { waitUntil: "domcontentloaded" });
  await page.waitForFunction((n) => document.getElementById("page")?.dataset.loaded === n, { timeout: 20000 }, name);
  const seen = await readPage();
  await page.screenshot({ path: `${shots}/${shot || name}.png`, fullPage: true });
  return seen;
}

try {
  // 1. Not logged in: a page sends to the login form.
  await page.goto(base + "/admin/outbox", { waitUntil: "domcontentloaded" });
  out.redirected_to = new URL(page.url()).pathname;
  await page.screenshot({ path: `${shots}/login.png` });

  // 2. A wrong key: the form again, saying so.
  await page.type("#key", adminKey + "-wrong");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  out.wrong_key = { path: new URL(page.url()).pathname,
                    error_shown: await page.$eval("#login-error", (e) => !e.hidden) };

  // 3. The right key: a session cookie the page's scripts cannot read.
  await page.type("#key", adminKey);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  out.after_login = new URL(page.url()).pathname;
  const cookie = (await page.cookies()).find((c) => c.name === "concert_console");
  out.cookie = cookie ? { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, path: cookie.path } : null;
  out.document_cookie = await page.evaluate(() => document.cookie);

  // 4. Each page.
  out.outbox = await open("/admin/outbox", "outbox");
  out.outbox_failed = await open("/admin/outbox?status=FAILED", "outbox", "outbox-failed");
  if (args.failed_id) {
    const before = await page.$eval("#status", (e) => e.textContent);
    await page.click(`button.retry[data-id="${args.failed_id}"]`);
    await page.waitForFunction((b) => { const s = document.getElementById("status").textContent;
      return s !== b && s.startsWith("as of"); }, { timeout: 20000 }, before);
    out.outbox_after_retry = await readPage();
    await page.screenshot({ path: `${shots}/outbox-after-retry.png`, fullPage: true });
  }
  out.topics = await open("/admin/topics", "topics");
  if (args.browse_topic) {
    out.browse = await open(`/admin/topics?topic=${encodeURIComponent(args.browse_topic)}&partition=${args.browse_partition}` +
      (args.browse_offset !== undefined ? `&offset=${args.browse_offset}` : ""), "topics", "topics-browse");
    out.browse.records = await page.$$eval("#records .record", (rs) => rs.map((r) => ({
      partition: Number(r.dataset.partition), offset: Number(r.dataset.offset),
      meta: r.querySelector(".meta").textContent, value: r.querySelector("pre").textContent })));
  }
  if (args.search_topic) {
    out.search = await open(`/admin/topics?topic=${encodeURIComponent(args.search_topic)}&key=${encodeURIComponent(args.search_key)}`,
      "topics", "topics-search");
    out.search.records = await page.$$eval("#records .record", (rs) => rs.map((r) => ({
      partition: Number(r.dataset.partition), offset: Number(r.dataset.offset), value: r.querySelector("pre").textContent })));
  }
  if (args.produce_key) {
    await open("/admin/topics?topic=test-topic", "topics", "topics-test");
    await page.type("#produce input[name=key]", args.produce_key);
    await page.click("#produce button[type=submit]");
    await page.waitForFunction(() => document.getElementById("produce-result").textContent !== "", { timeout: 20000 });
    out.produced = await page.$eval("#produce-result", (e) => e.textContent);
    await page.screenshot({ path: `${shots}/topics-produce.png`, fullPage: true });
  }
  out.consumers = await open("/admin/consumers", "consumers");
  out.queues = await open("/admin/queues", "queues");
  out.slack = await open("/admin/slack", "slack");

  // 5. Logging out ends the session: pages send to the form again.
  await Promise.all([page.waitForNavigation(), page.click("header form button")]);
  await page.goto(base + "/admin/queues", { waitUntil: "domcontentloaded" });
  out.after_logout = new URL(page.url()).pathname;
  out.console_errors = consoleErrors;
  process.stdout.write(JSON.stringify(out) + "\n");
  await browser.close();
} catch (e) {
  process.stderr.write(`console.mjs: ${e.stack || e}\nseen so far: ${JSON.stringify(out).slice(0, 4000)}\n`);
  await browser.close();
  process.exit(1);
}
