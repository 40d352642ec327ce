// Firefox (Gecko) for the cross-engine tests: Debian's firefox-esr, headless, driven over WebDriver BiDi by
// puppeteer-core, answering tests/engines.py one JSON line at a time on stdin/stdout:
//   {"id", "op": "open", "width", "height"}  -> {"id", "result": page}   a fresh browser context (its own storage)
//   {"id", "op": "goto", "page", "url"}
//   {"id", "op": "evaluate", "page", "expression"} -> the expression's value (a promise is awaited), as JSON
//   {"id", "op": "errors", "page"}           -> uncaught errors of the page so far
//   {"id", "op": "close", "page"}
// An op that fails answers {"id", "error": message}. The browser closes when stdin does.
import puppeteer from "puppeteer-core";
import { createInterface } from "node:readline";

const browser = await puppeteer.launch({
  browser: "firefox", executablePath: process.env.FIREFOX ?? "/usr/bin/firefox-esr", headless: true,
  // no updates, telemetry or remote settings: this machine has no network beyond the test server
  extraPrefsFirefox: { "app.update.enabled": false, "datareporting.policy.dataSubmissionEnabled": false, "toolkit.telemetry.enabled": false,
                       "services.settings.server": "http://127.0.0.1:9/", "network.captive-portal-service.enabled": false },
});
const pages = new Map();
let opened = 0;

const ops = {
  async open({ width, height }) {
    const context = await browser.createBrowserContext(), page = await context.newPage(), errors = [];
    page.on("pageerror", (e) => errors.push(String(e?.message ?? e)));
    await page.setViewport({ width, height });
    pages.set(++opened, { context, page, errors });
    return opened;
  },
  goto: ({ page, url }) => pages.get(page).page.goto(url).then(() => null),
  evaluate: ({ page, expression }) => pages.get(page).page.evaluate(expression),
  errors: ({ page }) => pages.get(page).errors,
  async close({ page }) {
    await pages.get(page)?.context.close();
    pages.delete(page);
  },
};

const reply = (message) => process.stdout.write(JSON.stringify(message) + "\n");
reply({ id: 0, result: await browser.version() });
for await (const line of createInterface({ input: process.stdin })) {
  const { id, op, ...args } = JSON.parse(line);
  try { reply({ id, result: (await ops[op](args)) ?? null }); }
  catch (e) { reply({ id, error: String(e?.message ?? e) }); }
}
await browser.close();
