// The storefront's page budget, measured in Debian's headless Chromium:
// bytes transferred by the first load of `/` (a fresh profile, so nothing is
// cached; product images are not shown, so none are counted) and the time
// from the product listing's API answer to the rendered listing
// (`window.__lastListingRenderMs`, set by static/assets/store.js).
//
//   node tests/browser/budget.mjs --base-url http://127.0.0.1:3000 [--runs 5]
//
// Prints the median and the worst of the runs and exits 1 above the budget
// (150 KB, 300 ms). The browser tests run one measurement of the same kind.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const BUDGET = { bytes: 150 * 1024, renderMs: 300 };
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** One first load of the storefront in `page`: `{ bytes, renderMs }`. */
export async function measureFirstLoad(page, base) {
  await page.goto(base + '/');
  await page.waitForSelector('#products li');
  return page.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return { bytes: entries.reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0), renderMs: window.__lastListingRenderMs };
  });
}

async function main() {
  const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : fallback; };
  const base = arg('--base-url', 'http://127.0.0.1:3000').replace(/\/$/, '');
  const runs = Math.max(1, Number(arg('--runs', '5')));
  const results = [];
  for (let n = 0; n < runs; n++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'shop-budget-'));
    const context = await chromium.launchPersistentContext(dir, { executablePath: process.env.SHOP_CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
    try {
      results.push(await measureFirstLoad(context.pages()[0] || (await context.newPage()), base));
    } finally {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const kb = results.map((r) => r.bytes / 1024);
  const ms = results.map((r) => r.renderMs);
  console.log(`| measure | median | worst | budget |\n|---|---|---|---|`);
  console.log(`| first load of / (KB transferred) | ${median(kb).toFixed(1)} | ${Math.max(...kb).toFixed(1)} | ${BUDGET.bytes / 1024} |`);
  console.log(`| listing rendered after the API answered (ms) | ${median(ms).toFixed(1)} | ${Math.max(...ms).toFixed(1)} | ${BUDGET.renderMs} |`);
  const over = Math.max(...results.map((r) => r.bytes)) > BUDGET.bytes || Math.max(...ms) >= BUDGET.renderMs;
  process.exit(over ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
