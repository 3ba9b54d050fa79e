// The chat page of `ponder serve` (GET /) in headless Chromium (Debian's chromium, driven by
// playwright-core): a greedy question streams its reasoning and answer into the page, a vote over
// 4 paths shows the paths side by side with the vote table; a screenshot is written.
// Run: PONDER_URL=http://127.0.0.1:PORT PONDER_KEY=KEY PONDER_SCREENSHOT=out.png node --test page_test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const url = process.env.PONDER_URL;
const key = process.env.PONDER_KEY || "";
const shot = process.env.PONDER_SCREENSHOT;
assert.ok(url, "PONDER_URL must be set");

test("chat page: streamed reasoning and answer, strategies, vote table", async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url + "/");
    assert.equal(await page.title(), "ponder");
    await page.fill("#key", key);
    await page.fill("#max_tokens", "12");

    // Greedy, streamed: the reasoning shows in its collapsible box; the finish reason in the meta line.
    await page.selectOption("#strategy", "greedy");
    await page.fill("#prompt", "What is 2+2?");
    await page.press("#prompt", "Enter");
    await page.waitForSelector(".turn .path .meta:has-text('length'), .turn .path .meta:has-text('stop')", { timeout: 30000 });
    const reasoning = await page.textContent(".turn .path .reasoning-text");
    assert.ok(reasoning.length > 0, "the reasoning streamed into the page");
    // The same request through the API: the page shows what the server returns.
    const api = await (await fetch(url + "/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
      body: JSON.stringify({ messages: [{ role: "user", content: "What is 2+2?" }], max_tokens: 12, temperature: 0 }),
    })).json();
    assert.equal(reasoning.trim(), api.choices[0].message.reasoning_content);

    // Vote over 4 paths: four columns with scores, and the vote table.
    await page.selectOption("#strategy", "vote");
    await page.fill("#width", "4");
    await page.fill("#prompt", "Pick a number");
    await page.press("#prompt", "Enter");
    await page.waitForFunction(() => document.querySelectorAll(".turn")[1]?.querySelectorAll(".path").length === 4,
                               null, { timeout: 30000 });
    await page.waitForSelector(".turn:nth-of-type(2) table.votes", { timeout: 30000 });
    const metas = await page.$$eval(".turn:nth-of-type(2) .path .meta", (els) => els.map((e) => e.textContent));
    assert.equal(metas.length, 4);
    for (const m of metas) assert.match(m, /score -?\d+\.\d{4}/);
    // A long unbroken string (a URL, a small model's babble) wraps in its column and in the vote
    // table instead of widening the page past the window.
    await page.evaluate(() => {
      const long = "x".repeat(3000);
      document.querySelector(".turn:nth-of-type(2) .path .answer").textContent = long;
      document.querySelector(".turn:nth-of-type(2) table.votes tr:last-child > :first-child").textContent = long;
    });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
              "the page is no wider than the window");
    assert.deepEqual(errors, []);
    if (shot) await page.screenshot({ path: shot, fullPage: true });
  } finally {
    await browser.close();
  }
});
