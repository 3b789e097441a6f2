// Unit tests of the storefront's pure modules, run by Node's test runner
// (`node --test tests/browser/`): money stays integer minor units until it
// is shown, and the docs page's YAML reader agrees with a full YAML parser
// on the real openapi.yaml (checked against a JSON copy made by the runner
// when python3 with PyYAML is around; otherwise on the parts checked here).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { minorExponent, minorToDecimal, decimalToMinor, formatMoney, errorText, html, raw } from '../../static/assets/format.js';
import { parseYaml } from '../../static/assets/yaml.js';
import { clockSkew, secondsLeft, refreshSession, signOutLocally } from '../../static/assets/api.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('minor units become exact decimal strings, by the currency exponent', () => {
  assert.equal(minorExponent('USD'), 2);
  assert.equal(minorExponent('JPY'), 0);
  assert.equal(minorExponent('BHD'), 3);
  assert.equal(minorToDecimal(1999, 2), '19.99');
  assert.equal(minorToDecimal(5, 2), '0.05');
  assert.equal(minorToDecimal(0, 2), '0.00');
  assert.equal(minorToDecimal(-150, 2), '-1.50');
  assert.equal(minorToDecimal(4800, 0), '4800');
  assert.equal(minorToDecimal(1234, 3), '1.234');
  // Beyond float precision, still exact.
  assert.equal(minorToDecimal(900719925474099, 2), "9007199254740.99");
});

test('every currency has the exponent the API counts its minor units in', () => {
  const table = readFileSync(path.join(root, 'components/shared/money/src/lib.rs'), 'utf8');
  const pairs = [...table.matchAll(/\("([A-Z]{3})", (\d)\)/g)];
  assert.ok(pairs.length > 100, 'the API table was read');
  for (const [, code, exponent] of pairs) assert.equal(minorExponent(code), Number(exponent), code);
  // Where Intl in Chrome writes no decimals, the amount is still exact.
  assert.match(formatMoney({ amount_minor: 150050, currency: 'HUF' }), /1,500\.50/);
});

test('typed amounts parse to integer minor units or are refused', () => {
  assert.equal(decimalToMinor('19.99', 2), 1999);
  assert.equal(decimalToMinor(' 19.9 ', 2), 1990);
  assert.equal(decimalToMinor('19', 2), 1900);
  assert.equal(decimalToMinor('0.1', 2), 10);
  assert.equal(decimalToMinor('1,50', 2), 150);
  assert.equal(decimalToMinor('4800', 0), 4800);
  for (const bad of ['19.999', '-1', '1e3', 'abc', '', '1.2.3', '4800.5']) {
    assert.equal(decimalToMinor(bad, bad === '4800.5' ? 0 : 2), null, bad);
  }
  // A comma before three digits may be a thousands separator: refused in
  // every currency, never read as 1.000 of a three-decimal one.
  assert.equal(decimalToMinor('1,000', 3), null);
  assert.equal(decimalToMinor('1,000', 2), null);
  assert.equal(decimalToMinor('1.000', 3), 1000);
  assert.equal(decimalToMinor('1,5', 3), 1500);
});

test('formatMoney uses Intl with the exact decimal', () => {
  assert.equal(new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(minorToDecimal(1999, 2)), '$19.99');
  assert.match(formatMoney({ amount_minor: 4800, currency: 'JPY' }), /4,800/);
  assert.match(formatMoney({ amount_minor: 1, currency: 'USD' }), /0\.01/);
  assert.equal(formatMoney(null), '');
});

test('error envelopes read as sentences', () => {
  assert.equal(errorText({ code: 'insufficient_stock', status: 422, details: { available: 3 } }), 'Sorry, only 3 left in stock.');
  assert.match(errorText({ code: 'validation_failed', status: 422, details: { fields: { 'shipping_address.postal_code': 'must not be empty' } } }), /Postal code: must not be empty/);
  assert.match(errorText({ code: 'internal_error', status: 500, requestId: 'abc' }), /Reference: abc/);
  assert.equal(errorText({ code: 'something_new', status: 409, message: 'As the API says.' }), 'As the API says.');
});

test('html escapes interpolations unless they are raw', () => {
  assert.equal(html`<p>${'<b>&"'}</p>`.__raw, '<p>&lt;b&gt;&amp;&quot;</p>');
  assert.equal(html`<p>${raw('<b>x</b>')}${raw('')}${['a', raw('<i>')]}</p>`.__raw, '<p><b>x</b>a<i></p>');
});

test('the YAML reader reads the spec as a YAML parser does', () => {
  const text = readFileSync(path.join(root, 'static/openapi.yaml'), 'utf8');
  const mine = parseYaml(text);
  assert.match(mine.openapi, /^3\.1/);
  assert.ok(mine.paths['/api/orders/all'].get.parameters.length >= 5);
  let reference = null;
  try {
    reference = JSON.parse(execFileSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', path.join(root, 'static/openapi.yaml')], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch { /* no python3 with PyYAML here */ }
  if (reference) assert.deepEqual(mine, reference);
  assert.deepEqual(parseYaml('a:\n  - { x: 1, y: [p, "q, r"] }\n  - b: |\n      two\n      lines\n    c: \'it\'\'s\'\n'), { a: [{ x: 1, y: ['p', 'q, r'] }, { b: 'two\nlines\n', c: "it's" }] });
});

test('a token lasts by the server clock, whatever the device clock says', () => {
  const token = (claims) => ['e30', Buffer.from(JSON.stringify(claims)).toString('base64url'), 'sig'].join('.');
  const fresh = token({ iat: 1000, exp: 1900 });
  // A device 20 minutes ahead: without the skew the token looks expired.
  const device = 1000 + 1200;
  const skew = clockSkew(fresh, device);
  assert.equal(skew, -1200);
  assert.equal(secondsLeft(fresh, device, 0) < 0, true);
  assert.equal(secondsLeft(fresh, device, skew), 900);
  assert.equal(secondsLeft(fresh, device + 890, skew), 10, 'and it still runs out');
  assert.equal(clockSkew('not a token', device), 0);
  assert.equal(secondsLeft('not a token', device, 0), -Infinity);
});

test('a refresh answered after signing out does not sign the session back in', async () => {
  const memory = () => { const m = new Map(); return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) }; };
  globalThis.localStorage = memory();
  globalThis.sessionStorage = memory();
  globalThis.navigator = {};
  let answer;
  globalThis.fetch = () => new Promise((resolve) => { answer = resolve; });
  localStorage.setItem('shop.refreshToken', 'r1');
  localStorage.setItem('shop.accessToken', 'a1');
  const refreshed = refreshSession();
  signOutLocally();
  answer({ ok: true, status: 200, json: async () => ({ accessToken: 'a2', refreshToken: 'r2' }) });
  assert.equal(await refreshed, false);
  assert.equal(localStorage.getItem('shop.refreshToken'), null, 'the old session stays signed out');
  assert.equal(localStorage.getItem('shop.accessToken'), null);
});
