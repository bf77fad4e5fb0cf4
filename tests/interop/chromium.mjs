// Opens a page in headless Chromium (the system's, never a downloaded one), waits until it sets
// `window.__interop`, and prints that as one JSON line.
//
//   node chromium.mjs <url> [timeout_ms]
//
// CHROMIUM names the executable (default /usr/bin/chromium). The page's console and errors go
// to stderr, so a failing test shows what the browser said.
import { chromium } from 'playwright-core';

const url = process.argv[2];
const timeout = Number(process.argv[3] ?? '20000');
if (!url) {
  console.error('usage: node chromium.mjs <url> [timeout_ms]');
  process.exit(2);
}

// Playwright starts it with a fresh temporary profile of its own and removes it on close.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
let status = 0;
try {
  const page = await browser.newPage();
  page.on('console', message => console.error(`[console.${message.type()}] ${message.text()}`));
  page.on('pageerror', error => console.error(`[pageerror] ${error.stack ?? error}`));
  page.on('requestfailed', request =>
    console.error(`[requestfailed] ${request.method()} ${request.url()}: ${request.failure()?.errorText}`),
  );
  await page.goto(url);
  await page.waitForFunction(() => window.__interop !== undefined, null, { timeout });
  const result = await page.evaluate(() => window.__interop);
  process.stdout.write(`${JSON.stringify({ ...result, browser: browser.version() })}\n`);
} catch (error) {
  console.error(`chromium.mjs: ${error.stack ?? error}`);
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
