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
import { minorExponent, minorToDecimal, decimalToMinor, formatMoney, errorText, retryText, html, raw, markup } from '../../static/assets/format.js';
import { parseYaml } from '../../static/assets/yaml.js';
import { api, ApiError, clockSkew, secondsLeft, refreshSession, signOutLocally, retryAfterSeconds } from '../../static/assets/api.js';

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
  assert.equal(markup(html`<p>${'<b>&"'}</p>`), '<p>&lt;b&gt;&amp;&quot;</p>');
  assert.equal(markup(html`<p>${raw('<b>x</b>')}${raw('')}${['a', raw('<i>')]}</p>`), '<p><b>x</b>a<i></p>');
  assert.equal(markup(html`<p>${html`<i>${'<'}</i>`}</p>`), '<p><i>&lt;</i></p>');
  assert.equal(markup('<b>'), '&lt;b&gt;', 'plain text is escaped');
  assert.equal(markup(undefined), '');
});

test('no API answer can pass for raw HTML: the marker is a Symbol JSON cannot make', () => {
  const attack = '<img src=x onerror=alert(1)>';
  // What an API answer could carry under the old marker's name, or any other.
  const forged = JSON.parse(JSON.stringify({ __raw: attack, raw: attack, [Symbol('trusted HTML').description]: attack }));
  for (const value of [forged, [forged], { ...forged }, JSON.parse('[{"__raw": "<script>"}]')]) {
    const out = markup(html`<p>${value}</p>`);
    assert.ok(!/<img|<script/.test(out), out);
  }
  assert.ok(!markup(forged).includes('<'));
  // A made value has no string-keyed property to copy or forge, and cannot be changed.
  const made = html`<b>${'x'}</b>`;
  assert.deepEqual(Object.keys(made), []);
  assert.equal(JSON.stringify(made), '{}');
  assert.ok(Object.isFrozen(made));
  assert.equal(markup(JSON.parse(JSON.stringify(made))), '[object Object]', 'a copy through JSON is no longer trusted');
});

test('Retry-After is read as seconds, or as an HTTP date', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(retryAfterSeconds('30', now), 30);
  assert.equal(retryAfterSeconds(' 0 ', now), 0);
  assert.equal(retryAfterSeconds('Thu, 01 Jan 2026 00:01:30 GMT', now), 90);
  assert.equal(retryAfterSeconds('Wed, 31 Dec 2025 23:00:00 GMT', now), 0, 'a date passed: now');
  for (const bad of [null, undefined, '', 'soon', '-5', '1.5', '12abc']) assert.equal(retryAfterSeconds(bad, now), null, String(bad));
});

test('a 429 or 503 answer says when to try again, from Retry-After', async () => {
  assert.equal(retryText(30), 'Try again in 30 seconds.');
  assert.equal(retryText(1), 'Try again in 1 second.');
  assert.equal(retryText(0), 'Try again in 1 second.');
  assert.equal(retryText(0.2), 'Try again in 1 second.');
  assert.equal(retryText(60), 'Try again in 1 minute.');
  assert.equal(retryText(125), 'Try again in 3 minutes.');
  assert.equal(retryText(3600), 'Try again in 1 hour.');
  assert.equal(retryText(5000), 'Try again in 2 hours.');
  for (const none of [null, undefined, NaN, -1, '30']) assert.equal(retryText(none), null, String(none));
  assert.equal(errorText({ code: 'rate_limited', status: 429, retryAfter: 30 }), 'Too many attempts. Try again in 30 seconds.');
  assert.equal(errorText({ code: 'rate_limited', status: 429, retryAfter: null }), 'Too many attempts. Please wait a moment and try again.');
  assert.equal(errorText({ code: 'payment_provider_unavailable', status: 503, retryAfter: 2 }), 'The payment service is not answering right now. Try again in 2 seconds.');
  assert.equal(errorText({ code: 'cart_store_unavailable', status: 503, retryAfter: 1, requestId: 'r1' }), 'This part of the shop is not available right now. Try again in 1 second. (Reference: r1)');
  assert.equal(errorText({ code: 'something_new', status: 429, message: 'Slow down.', retryAfter: 300 }), 'Slow down. Try again in 5 minutes.');
  assert.match(errorText({ code: 'cart_busy', status: 409, retryAfter: 1 }), /another tab or window\. Try again in 1 second\.$/);
  assert.match(errorText({ code: 'cart_busy', status: 409, retryAfter: null }), /could not tell whether your change was saved/);

  // api.js keeps the header on the ApiError it throws.
  const memory = () => { const m = new Map(); return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) }; };
  globalThis.localStorage = memory();
  globalThis.sessionStorage = memory();
  globalThis.navigator = {};
  globalThis.fetch = async () => new Response(JSON.stringify({ error: { code: 'rate_limited', message: 'too many password resets requested; try again later', details: { retry_after_seconds: 42 }, request_id: 'req-1' } }), { status: 429, headers: { 'content-type': 'application/json', 'retry-after': '42' } });
  const refused = await api('POST', '/api/auth/password-reset', { body: { email: 'a@example.test' }, auth: false }).catch((e) => e);
  assert.ok(refused instanceof ApiError);
  assert.equal(refused.status, 429);
  assert.equal(refused.retryAfter, 42);
  assert.equal(refused.requestId, 'req-1');
  assert.equal(errorText(refused), 'Too many attempts. Try again in 42 seconds.');
  globalThis.fetch = async () => new Response(JSON.stringify({ error: { code: 'not_found', message: 'order not found', request_id: 'req-2' } }), { status: 404 });
  assert.equal((await api('GET', '/api/orders/x').catch((e) => e)).retryAfter, null, 'no header: null');
});

test('refund and price errors speak money, not minor units', () => {
  const usd = { currency: 'USD', amount: 9999 };
  assert.equal(errorText({ code: 'invalid_refund_amount', status: 422, message: 'the amount must be from 1 to 4850', details: { refundable: 4850 } }, usd),
    'That is more than is left to refund: at most $48.50 can be refunded.');
  assert.match(errorText({ code: 'invalid_refund_amount', status: 422, details: { refundable: 4800 } }, { currency: 'JPY' }), /at most ¥4,800 can be refunded/);
  assert.equal(errorText({ code: 'invalid_refund_amount', status: 422, details: { refundable: 0 } }, usd), 'Nothing is left to refund on this order.');
  // Stripe's coarser steps (the last of three decimals must be 0).
  assert.match(errorText({ code: 'invalid_refund_amount', status: 422, message: 'Stripe cannot refund this amount: Stripe takes KWD amounts only in whole hundredths' }, { currency: 'KWD', amount: 1235 }), /^Stripe refunds KWD only in whole hundredths: make the last decimal of KWD\s1\.235 a 0\.$/);
  assert.equal(errorText({ code: 'invalid_refund_amount', status: 422, message: 'Stripe cannot refund this amount: 5 ISK is too large' }, { currency: 'ISK', amount: 5 }), 'Stripe cannot refund ISK\u00a05. Try another amount.');
  // Without the currency, still no minor units.
  assert.equal(errorText({ code: 'invalid_refund_amount', status: 422, details: { refundable: 4850 } }), 'That is more than is left to refund.');
  const tooDear = { code: 'validation_failed', status: 422, details: { fields: { 'price.amount_minor': 'amount_minor must be a whole number from 0 to 100000000000' } } };
  assert.equal(errorText(tooDear, { currency: 'USD' }), 'Please check: Price: must be from $0.00 to $1,000,000,000.00.');
  assert.equal(errorText(tooDear, { currency: 'X1' }), 'Please check: Price: amount_minor must be a whole number from 0 to 100000000000.', 'a currency being typed: as the API says');
  assert.equal(errorText({ code: 'not_refundable', status: 409, details: { current_status: 'refunded' } }), 'This order has nothing to refund (status: Refunded).');
  for (const code of ['stock_changed', 'below_reserved', 'category_in_use', 'slug_taken', 'quantity_limit', 'cart_full', 'no_payment_to_refund']) {
    const text = errorText({ code, status: 409, message: 'the_api_s own words' });
    assert.ok(!text.includes('the_api_s'), `${code}: ${text}`);
  }
  assert.equal(errorText({ code: 'quantity_limit', status: 422, details: { max: 99 } }), 'You can have from 1 to 99 of one product in your cart.');
  assert.match(errorText({ code: 'currency_mismatch', status: 422, details: { cart_currency: 'EUR', product_currency: 'USD' } }), /^Your cart is priced in EUR, and this product in USD/);
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

test('two tabs adding as guests at once fill one cart, with Web Locks or without', async () => {
  const memory = () => { const m = new Map(); return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) }; };
  // The shop's answer to a guest's change: the token sent, or a new cart's.
  const shop = () => {
    const seen = [];
    const pending = [];
    let carts = 0;
    const fetch = (path, init) => new Promise((resolve) => {
      const sent = init.headers['x-cart-token'] || null;
      seen.push(sent);
      pending.push(() => {
        const token = sent || `ct_${++carts}`;
        resolve(new Response(JSON.stringify({ lines: [] }), { status: 200, headers: { 'content-type': 'application/json', 'x-cart-token': token } }));
      });
    });
    return { fetch, seen, pending, carts: () => carts };
  };
  const settle = () => new Promise((r) => setTimeout(r, 0));
  const add = (id) => api('POST', '/api/cart/items', { body: { product_id: id, quantity: 1 }, cart: true });

  // Without Web Locks: both are sent without a token and both make a
  // cart; the second answer's change is made again in the first's cart.
  globalThis.localStorage = memory();
  globalThis.sessionStorage = memory();
  globalThis.navigator = {};
  let s = shop();
  globalThis.fetch = s.fetch;
  const one = add('p1');
  const two = add('p2');
  await settle();
  assert.deepEqual(s.seen, [null, null]);
  s.pending.shift()();
  await one;
  assert.equal(localStorage.getItem('shop.cartToken'), 'ct_1');
  s.pending.shift()();
  await settle();
  assert.deepEqual(s.seen, [null, null, 'ct_1'], 'made again with the first tab\'s token');
  s.pending.shift()();
  await two;
  assert.equal(localStorage.getItem('shop.cartToken'), 'ct_1', 'the first cart stays the one');

  // With Web Locks: the second waits for the first's token and sends it.
  globalThis.localStorage = memory();
  let held = Promise.resolve();
  globalThis.navigator = { locks: { request: (name, fn) => { const run = held.then(() => fn()); held = run.catch(() => {}); return run; } } };
  s = shop();
  globalThis.fetch = s.fetch;
  const three = add('p3');
  const four = add('p4');
  await settle();
  assert.deepEqual(s.seen, [null], 'one at a time');
  s.pending.shift()();
  await three;
  await settle();
  assert.deepEqual(s.seen, [null, 'ct_1']);
  s.pending.shift()();
  await four;
  assert.equal(s.carts(), 1, 'one cart made');
  assert.equal(localStorage.getItem('shop.cartToken'), 'ct_1');
});

test('a refused payment says what the order is, not only that it cannot be paid', () => {
  assert.equal(errorText({ code: 'order_not_payable', details: { current_status: 'paid' } }), 'This order is already paid.');
  assert.equal(errorText({ code: 'order_not_payable', details: { current_status: 'expired' } }), 'This order can no longer be paid (it expired or was cancelled).');
  assert.match(errorText({ code: 'payment_time_over' }), /Cancel it, then check out again/);
  assert.match(errorText({ code: 'nothing_to_pay' }), /needed no payment/);
});

test('a step of a flow begun as one account is not sent as another signed in meanwhile', async () => {
  const memory = () => { const m = new Map(); return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) }; };
  globalThis.localStorage = memory();
  globalThis.sessionStorage = memory();
  globalThis.navigator = {};
  const token = (sub) => `x.${Buffer.from(JSON.stringify({ sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 900 })).toString('base64url')}.y`;
  let sent = 0;
  globalThis.fetch = async () => { sent += 1; return new Response('{}', { status: 201, headers: { 'content-type': 'application/json' } }); };
  localStorage.setItem('shop.accessToken', token('user-a'));
  assert.deepEqual(await api('POST', '/api/orders', { body: {}, asUser: 'user-a' }), {});
  localStorage.setItem('shop.accessToken', token('user-b'));
  const refused = await api('POST', '/api/orders', { body: {}, asUser: 'user-a' }).catch((e) => e);
  assert.equal(refused.code, 'account_changed');
  assert.match(errorText(refused), /another tab\. Nothing was sent/);
  assert.equal(sent, 1, 'the second was never sent');
});
