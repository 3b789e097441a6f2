// The admin console: orders (filter, ship with tracking, refund), products
// (create, edit, deactivate, stock), categories, email deliveries and
// users' roles. Shares the storefront's session (same origin, same tokens):
// an admin signed in on the storefront is signed in here.

import { api, currentUser, signIn, signOut, onSessionChange, useHttpCache, newKey, rememberUser } from './api.js';
import { formatMoney, formatDate, statusText, STATUS_TEXT, PAID_STATUSES, errorText, html, raw, markup, say, minorExponent, decimalToMinor, minorToDecimal } from './format.js';

const app = document.getElementById('app');
// Admins must see their own changes at once: always revalidate.
useHttpCache('no-cache');

function render(view) { app.innerHTML = markup(view); }

function notice(kind, text) { return html`<div class="notice ${kind}">${text}</div>`; }
/** Show a notice in the element `id` (when the page has it) and say it. */
function show(id, kind, text) { const el = document.getElementById(id); if (el) el.innerHTML = markup(notice(kind, text)); say(text); }
let flash = null;
function takeFlash() {
  const f = flash;
  flash = null;
  if (!f) return raw('');
  say(f.text);
  return notice(f.kind, f.text);
}

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, '', path); else history.pushState({}, '', path);
  route();
}
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a');
  if (!a || a.target || ev.metaKey || ev.ctrlKey || ev.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/admin')) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
// A console restored from the back/forward cache (Back after signing out
// elsewhere) is drawn again for whoever is signed in now, so it never shows
// customers' data to the next person on the device (found in review).
window.addEventListener('pageshow', (ev) => { if (ev.persisted) { document.getElementById('admin-sign-out').hidden = !currentUser(); route(); } });
onSessionChange((user, reason) => {
  document.getElementById('admin-sign-out').hidden = !user;
  if (reason === 'session_ended') { flash = { kind: 'warn', text: 'Your session has ended. Please sign in again.' }; route(); }
  // Signed in or out in another tab: follow (a signed-out console must not
  // keep showing customers' data).
  if (reason === 'signed_out_elsewhere' || reason === 'signed_in_elsewhere') {
    // Said on the sign-in page, which shows it at once.
    if (!user) flash = { kind: 'warn', text: 'You were signed out in another tab.' };
    route();
  }
});
// The button hides itself: the sign-in page's heading takes focus (route).
document.getElementById('admin-sign-out').addEventListener('click', async () => { await signOut(); route(); });

const routes = [
  [/^\/admin\/?$/, () => navigate('/admin/orders', { replace: true })],
  [/^\/admin\/orders$/, ordersPage],
  [/^\/admin\/orders\/([^/]+)$/, orderPage],
  [/^\/admin\/products$/, productsPage],
  [/^\/admin\/products\/new$/, (c) => productForm(null, c)],
  [/^\/admin\/products\/([^/]+)$/, productForm],
  [/^\/admin\/categories$/, categoriesPage],
  [/^\/admin\/deliveries$/, deliveriesPage],
  [/^\/admin\/users$/, usersPage],
];

let seq = 0;
// `loading: false` draws the page again without "Loading…" in between,
// and `focus: false` leaves focus alone (a redraw after a change on it).
// True when this draw is still the page's.
async function route({ focus = true, loading = true } = {}) {
  const mine = ++seq;
  const isCurrent = () => mine === seq;
  const user = currentUser();
  document.getElementById('admin-sign-out').hidden = !user;
  // Neither page is one a redraw goes on with (`route` returns falsy).
  if (!user) {
    signInPage();
    if (mine > 1 && focus) focusHeading();
    return;
  }
  if (user.role !== 'admin') {
    render(html`<h1>Admins only</h1><p>You are signed in as ${user.email}, which is not an admin account. <a href="/">Back to the shop</a></p>`);
    if (mine > 1 && focus) focusHeading();
    return;
  }
  const path = location.pathname.replace(/\/+$/, '') || '/admin';
  const match = routes.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
  if (!match) { render(html`<h1>Not found</h1><p><a href="/admin/orders">Orders</a></p>`); return; }
  if (loading) render(html`<p class="loading">Loading…</p>`);
  try {
    await match[1](...match[0].slice(1).map(decodeURIComponent), isCurrent);
  } catch (e) {
    if (!isCurrent()) return;
    render(html`<h1>Something went wrong</h1>${notice('error', errorText(e))}`);
  }
  if (isCurrent() && mine > 1 && focus) focusHeading();
  return isCurrent();
}

/**
 * Previous / next links for a list of `total` items, `size` a page, on
 * `path` with the current query (its filters kept, `page` replaced).
 */
function pager(path, total, size) {
  const params = new URLSearchParams(location.search);
  const page = Math.max(1, Number(params.get('page')) || 1);
  const pages = Math.max(1, Math.ceil(total / size));
  if (pages < 2) return '';
  const to = (n) => { const q = new URLSearchParams(params); q.set('page', n); return `${path}?${q}`; };
  return html`<nav class="pager" aria-label="Pages">${page > 1 ? html`<a href="${to(page - 1)}">Previous</a>` : ''}<span>Page ${page} of ${pages}</span>${page < pages ? html`<a href="${to(page + 1)}">Next</a>` : ''}</nav>`;
}

/** The `page` of the current address (1 when absent). */
function currentPage() { return Math.max(1, Number(new URLSearchParams(location.search).get('page')) || 1); }

function focusHeading() {
  const h = app.querySelector('h1');
  if (h) { h.setAttribute('tabindex', '-1'); h.focus({ preventScroll: true }); }
}

/**
 * Draw the page again from the API's state after a change made on it (or
 * refused), so each control shows what is stored, not a value the API
 * refused; then show `text` in the slot `status` and put focus back on
 * `focus` (a selector; the heading when it is gone).
 */
async function redraw({ status, kind, text, focus }) {
  if (!(await route({ focus: false, loading: false }))) return;
  if (text) show(status, kind, text);
  const control = focus && app.querySelector(focus);
  if (control) control.focus(); else focusHeading();
}

function signInPage() {
  document.title = 'Sign in · Shop admin';
  render(html`${takeFlash()}<h1>Admin sign in</h1>
    <form class="narrow box" id="sign-in">
      <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" required>
      <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
      <div id="form-status"></div>
      <p><button type="submit">Sign in</button></p>
    </form>`);
  const form = document.getElementById('sign-in');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    try { await signIn(String(d.get('email')).trim(), String(d.get('password'))); route(); } catch (e) { show('form-status', 'error', errorText(e)); }
  });
}

// ------------------------------------------------------------------ orders

/** The search box: an order id (or its start), or a customer's email. */
async function searchParams(text) {
  const t = text.trim().replace(/^#/, '');
  if (!t) return {};
  if (t.includes('@') || !/^[0-9a-fA-F-]{4,36}$/.test(t)) {
    // The orders listing takes at most 20 account ids: the 20 newest
    // matching accounts, and the page says when more match.
    const found = await api('GET', '/api/admin/users?limit=20&email=' + encodeURIComponent(t));
    return { user_id: found.users.map((u) => u.id).join(',') || 'none', users: found.users, unsearched: Math.max(0, found.total - found.users.length), text: t };
  }
  return { order_id: t };
}

async function ordersPage(isCurrent) {
  document.title = 'Orders · Shop admin';
  const params = new URLSearchParams(location.search);
  const page = Math.max(1, Number(params.get('page')) || 1);
  const query = new URLSearchParams({ limit: 25, page });
  for (const k of ['status', 'created_from', 'created_to']) if (params.get(k)) query.set(k, params.get(k));
  const search = await searchParams(params.get('search') || '');
  let result = { orders: [], total: 0 };
  if (search.user_id !== 'none') {
    if (search.user_id) query.set('user_id', search.user_id);
    if (search.order_id) query.set('order_id', search.order_id);
    result = await api('GET', '/api/orders/all?' + query);
  }
  if (!isCurrent()) return;
  const emails = new Map((search.users || []).map((u) => [u.id, u.email]));
  render(html`${takeFlash()}
    <h1>Orders</h1>
    <form class="filters" id="order-filters" aria-label="Filter orders">
      <label>Status<br><select name="status"><option value="">Any status</option>
        ${Object.keys(STATUS_TEXT).map((s) => html`<option value="${s}" ${s === params.get('status') ? raw('selected') : ''}>${statusText(s)}</option>`)}</select></label>
      <label>Placed from<br><input type="date" name="created_from" value="${params.get('created_from') || ''}"></label>
      <label>Placed until<br><input type="date" name="created_to" value="${params.get('created_to') || ''}"></label>
      <label>Order id or customer email<br><input name="search" value="${params.get('search') || ''}" size="28"></label>
      <button type="submit">Filter</button>
    </form>
    <p class="muted">${result.total} ${result.total === 1 ? 'order' : 'orders'}${search.unsearched ? html`, of the 20 newest of the ${search.users.length + search.unsearched} accounts whose email contains “${search.text}”: <span id="search-truncated">narrow the search to see the other ${search.unsearched}</span>` : ''}</p>
    <div class="table-wrap" tabindex="0"><table id="admin-orders">
      <caption class="visually-hidden">Orders, newest first</caption>
      <thead><tr><th scope="col">Order</th><th scope="col">Placed</th><th scope="col">Customer</th><th scope="col">Status</th><th scope="col" class="num">Total</th><th scope="col" class="num">Refunded</th></tr></thead>
      <tbody>${result.orders.map((o) => html`<tr data-order-id="${o.id}">
        <td><a href="/admin/orders/${o.id}">#${o.id.slice(0, 8)}</a></td><td>${formatDate(o.created_at)}</td>
        <td>${emails.get(o.user_id) || html`<span class="muted">${o.user_id.slice(0, 8)}</span>`}</td>
        <td><span class="badge status-${o.status}">${statusText(o.status)}</span>${o.flags.length ? html` <span class="badge bad">${o.flags.join(', ')}</span>` : ''}</td>
        <td class="num">${formatMoney(o.total)}</td><td class="num">${o.refunded.amount_minor ? formatMoney(o.refunded) : ''}</td></tr>`)}</tbody>
    </table></div>
    ${pager('/admin/orders', result.total, 25)}
  `);
  document.getElementById('order-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(ev.target)) if (String(v).trim()) next.set(k, String(v).trim());
    navigate('/admin/orders?' + next);
  });
}

async function orderPage(id, isCurrent) {
  const [order, history, payment] = await Promise.all([
    api('GET', `/api/orders/${encodeURIComponent(id)}`),
    api('GET', `/api/orders/${encodeURIComponent(id)}/history`),
    api('GET', `/api/payments/order/${encodeURIComponent(id)}`).catch(() => null),
  ]);
  if (!isCurrent()) return;
  document.title = `Order #${order.id.slice(0, 8)} · Shop admin`;
  const exp = minorExponent(order.currency);
  // What the payments service says can still go back (a refund Stripe could
  // not pay out after all counts as not sent); without it, what is left.
  const refundable = payment && payment.refundable ? payment.refundable.amount_minor : order.total.amount_minor - order.refunded.amount_minor;
  const canShip = ['paid', 'processing', 'partially_refunded'].includes(order.status) || (order.status === 'shipped');
  // A cancelled order whose refund failed, or a refunded one whose refund
  // Stripe could not pay out, is refunded from here too.
  const canRefund = refundable > 0 && (PAID_STATUSES.includes(order.status) || (order.status === 'cancelled' && order.flags.includes('refund_failed')) || (['cancelled', 'refunded'].includes(order.status) && order.flags.includes('refund_failed_later')));
  const a = order.shipping_address;
  render(html`${takeFlash()}
    <p><a href="/admin/orders">← Orders</a></p>
    <h1>Order #${order.id.slice(0, 8)}</h1>
    <p>Status: <span class="badge status-${order.status}" id="order-status">${statusText(order.status)}</span> · ${formatDate(order.created_at)} · <span class="muted">${order.id}</span></p>
    ${order.flags.length ? notice('warn', 'Flags: ' + order.flags.join(', ')) : ''}
    <div class="two-col">
      <div>
        <div class="table-wrap" tabindex="0"><table><caption class="visually-hidden">Lines</caption>
          <thead><tr><th scope="col">Product</th><th scope="col" class="num">Qty</th><th scope="col" class="num">Total</th></tr></thead>
          <tbody>${order.lines.map((l) => html`<tr><td>${l.name} <span class="muted">${l.sku}</span></td><td class="num">${l.quantity}</td><td class="num">${formatMoney(l.line_total)}</td></tr>`)}</tbody>
          <tfoot><tr><th scope="row" colspan="2">Total</th><td class="num">${formatMoney(order.total)}</td></tr>
          <tr><th scope="row" colspan="2">Refunded</th><td class="num" id="refunded">${formatMoney(order.refunded)}</td></tr></tfoot></table></div>
        ${a ? html`<h2>Ship to</h2><address>${a.name}<br>${a.line1}${a.line2 ? html`<br>${a.line2}` : ''}<br>${a.postal_code} ${a.city}${a.region ? `, ${a.region}` : ''}<br>${a.country}</address>` : ''}
        ${payment && payment.payment ? html`<p class="muted">Payment: ${payment.payment.status} · ${payment.payment.checkout_session || payment.payment.payment_intent || ''}</p>` : ''}
        ${payment && payment.objects && payment.objects.length ? html`<h2>Stripe objects</h2>
        <div class="table-wrap" tabindex="0"><table id="payment-objects"><caption class="visually-hidden">Stripe objects of this order</caption>
          <thead><tr><th scope="col">Object</th><th scope="col">Status</th><th scope="col" class="num">Amount</th></tr></thead>
          <tbody>${payment.objects.map((o) => html`<tr><td>${o.kind.replace('_', ' ')} <span class="muted">${o.id}</span></td><td>${o.status}</td><td class="num">${o.amount_minor === null ? '' : formatMoney({ amount_minor: o.amount_minor, currency: o.currency || order.currency })}</td></tr>`)}</tbody></table></div>` : ''}
        ${payment && payment.automatic_refunds && payment.automatic_refunds.length ? notice('warn', 'Returned automatically: ' + payment.automatic_refunds.map((r) => `${formatMoney({ amount_minor: r.amount_minor, currency: r.currency })} (${r.reason}, ${r.status})`).join('; ')) : ''}
        <h2>History</h2>
        <ol class="timeline">${history.history.map((h) => html`<li><strong>${statusText(h.to)}</strong> <span class="muted">${formatDate(h.at)} · ${h.actor}</span><br><span class="muted">${h.reason}</span></li>`)}</ol>
      </div>
      <div class="stack">
        ${canShip ? html`<form class="box" id="tracking-form">
          <h2>${order.tracking ? 'Tracking' : 'Ship with tracking'}</h2>
          ${order.tracking ? html`<p>${order.tracking.carrier} ${order.tracking.number}</p>` : ''}
          <label for="carrier">Carrier</label><input id="carrier" name="carrier" required value="${order.tracking ? order.tracking.carrier : ''}">
          <label for="tracking_number">Tracking number</label><input id="tracking_number" name="tracking_number" required value="${order.tracking ? order.tracking.number : ''}">
          <div id="tracking-status"></div>
          <p><button type="submit">${order.tracking ? 'Update tracking' : 'Mark shipped'}</button></p>
        </form>` : ''}
        ${order.status === 'shipped' ? html`<p><button type="button" class="secondary" id="mark-delivered">Mark delivered</button></p>` : ''}
        ${canRefund ? html`<form class="box" id="refund-form">
          <h2>Refund</h2>
          <p class="muted">Up to ${formatMoney({ amount_minor: refundable, currency: order.currency })} can be refunded.</p>
          <label for="refund-amount">Amount (${order.currency}); empty for everything left</label>
          <input id="refund-amount" name="amount" inputmode="decimal" placeholder="${minorToDecimal(refundable, exp)}">
          <div id="refund-status"></div>
          <p><button type="submit" class="danger">Refund</button></p>
        </form>` : ''}
        ${['pending_payment', 'paid', 'processing'].includes(order.status) ? html`<p><button type="button" class="danger" id="cancel-order">Cancel order${order.status === 'pending_payment' ? '' : ' and refund'}</button></p>` : ''}
        <div id="action-status"></div>
      </div>
    </div>`);
  // Said on the page it was done on; if the admin has moved on to another
  // page meanwhile, the flash names the order, so it is not read as news
  // about the order on screen.
  const done = (text) => {
    const here = location.pathname === `/admin/orders/${order.id}`;
    flash = { kind: 'success', text: here ? text : `Order #${order.id.slice(0, 8)}: ${text}` };
    route();
  };
  const tracking = document.getElementById('tracking-form');
  if (tracking) tracking.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = Object.fromEntries(new FormData(tracking));
    try { await api('PUT', `/api/orders/${order.id}/tracking`, { body: { carrier: d.carrier.trim(), tracking_number: d.tracking_number.trim() } }); done('Tracking saved; the order is shipped.'); } catch (e) { show('tracking-status', 'error', errorText(e)); }
  });
  const refund = document.getElementById('refund-form');
  // One Idempotency-Key per refund asked for, kept in this tab's
  // sessionStorage until the API answered for sure (2xx, or a 4xx): asking
  // for the same amount again after an error or a reload (Stripe slow or
  // down, the refund perhaps made) is the same refund, whatever Stripe's
  // events changed meanwhile (found in review: the key lived in the page
  // only, so a reload and a second try refunded twice).
  const pendingSlot = `shop.refund.${order.id}`;
  const pending = () => { try { return JSON.parse(sessionStorage.getItem(pendingSlot)); } catch { return null; } };
  if (refund && pending()) {
    const p = pending();
    show('refund-status', 'warn', `A refund of ${p.amount === null ? 'everything left' : formatMoney({ amount_minor: p.amount, currency: order.currency })} was asked for and its answer did not arrive: it may have been made. Asking for the same amount again repeats that request; it does not refund twice.`);
  }
  if (refund) refund.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = String(new FormData(refund).get('amount') || '').trim();
    const amount = text ? decimalToMinor(text, exp) : null;
    if (text && (amount === null || amount < 1)) return show('refund-status', 'error', `“${text}” is not an amount in ${order.currency}.`);
    if (!confirm(`Refund ${amount === null ? 'everything left' : formatMoney({ amount_minor: amount, currency: order.currency })}?`)) return;
    let asked = pending();
    if (!asked || asked.amount !== amount) asked = { amount, key: newKey() };
    sessionStorage.setItem(pendingSlot, JSON.stringify(asked));
    const body = amount === null ? { order_id: order.id } : { order_id: order.id, amount };
    const button = refund.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    try {
      await api('POST', '/api/payments/refund', { body, headers: { 'idempotency-key': asked.key } });
      sessionStorage.removeItem(pendingSlot);
      done('Refunded.');
    } catch (e) {
      // A 4xx is a definite answer (nothing was refunded by it); a 5xx or
      // no answer may hide a refund made: the key stays for the retry.
      // Stripe refusing it (502 with Stripe's status) is definite too.
      const refused = e.code === 'payment_provider_error' && e.details && e.details.stripe_status;
      if ((e.status >= 400 && e.status < 500 && e.code !== 'request_in_progress') || refused) sessionStorage.removeItem(pendingSlot);
      // Amounts in the order's money, not the API's minor units.
      show('refund-status', 'error', errorText(e, { currency: order.currency, amount: amount === null ? refundable : amount }));
    } finally {
      if (button) button.disabled = false;
    }
  });
  const delivered = document.getElementById('mark-delivered');
  if (delivered) delivered.addEventListener('click', async () => {
    try { await api('PUT', `/api/orders/${order.id}/status`, { body: { status: 'delivered' } }); done('Marked delivered.'); } catch (e) { show('action-status', 'error', errorText(e)); }
  });
  const cancel = document.getElementById('cancel-order');
  if (cancel) cancel.addEventListener('click', async () => {
    if (!confirm('Cancel this order?')) return;
    try { await api('POST', `/api/orders/${order.id}/cancel`); done('Cancelled.'); } catch (e) {
      // Cancelled, but its refund failed (flagged refund_failed) or another
      // request is sending it: the page must show the cancellation.
      if (e.code === 'refund_failed' || e.code === 'refund_in_progress') {
        flash = { kind: 'warn', text: e.code === 'refund_failed' ? 'Cancelled, but the refund failed: the order is flagged refund_failed; cancel again, or refund it below.' : 'Cancelled; its refund is being sent by another request.' };
        return route();
      }
      show('action-status', 'error', errorText(e));
    }
  });
}

// ------------------------------------------------------------------ products

async function productsPage(isCurrent) {
  document.title = 'Products · Shop admin';
  const params = new URLSearchParams(location.search);
  const page = Math.max(1, Number(params.get('page')) || 1);
  const q = params.get('q') || '';
  const query = new URLSearchParams({ include_inactive: 'true', limit: 50, page });
  if (q) query.set('q', q);
  const result = await api('GET', '/api/products?' + query);
  if (!isCurrent()) return;
  render(html`${takeFlash()}
    <h1>Products</h1>
    <p><a class="button" href="/admin/products/new">New product</a></p>
    <form class="filters" id="product-search" role="search"><label>Search<br><input name="q" value="${q}"></label><button type="submit" class="secondary">Search</button></form>
    <div class="table-wrap" tabindex="0"><table id="admin-products"><caption class="visually-hidden">Products</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">SKU</th><th scope="col" class="num">Price</th><th scope="col" class="num">On hand</th><th scope="col" class="num">Reserved</th><th scope="col">State</th><th scope="col">Stock</th></tr></thead>
      <tbody>${result.products.map((p) => html`<tr data-product-id="${p.id}">
        <td><a href="/admin/products/${p.id}">${p.name}</a></td><td>${p.sku}</td><td class="num">${formatMoney(p.price)}</td>
        <td class="num">${p.on_hand}</td><td class="num">${p.reserved}</td>
        <td>${p.active ? html`<span class="badge ok">active</span>` : html`<span class="badge bad">inactive</span>`}</td>
        <td><form class="stock-form" data-id="${p.id}" data-on-hand="${p.on_hand}"><label class="visually-hidden" for="stock-${p.id}">Stock on hand of ${p.name}</label>
          <input class="stock" id="stock-${p.id}" name="stock_on_hand" type="number" min="0" step="1" required value="${p.on_hand}"> <button type="submit" class="secondary">Set</button></form></td>
      </tr>`)}</tbody></table></div>
    <div id="products-status"></div>
    ${pager('/admin/products', result.total, 50)}`);
  document.getElementById('product-search').addEventListener('submit', (ev) => { ev.preventDefault(); navigate('/admin/products?q=' + encodeURIComponent(new FormData(ev.target).get('q'))); });
  for (const f of app.querySelectorAll('form.stock-form')) {
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const focus = '#' + CSS.escape(`stock-${f.dataset.id}`);
      const name = f.closest('tr').querySelector('a').textContent;
      const stock = Number(new FormData(f).get('stock_on_hand'));
      // Drawn again either way, with the counts the API now holds: a
      // refused count (stock_changed: a sale or restock since this page
      // was drawn; below_reserved) does not stay in its box.
      try {
        // What this page showed: refused (409 stock_changed) if a sale or
        // restock changed it since, instead of writing over it.
        await api('PUT', `/api/products/${f.dataset.id}/inventory`, { body: { stock_on_hand: stock, expected_on_hand: Number(f.dataset.onHand) } });
        await redraw({ status: 'products-status', kind: 'success', text: `Stock updated. ${name}: ${stock} on hand.`, focus });
      } catch (e) {
        await redraw({ status: 'products-status', kind: 'error', text: `${name}: ${errorText(e)}`, focus });
      }
    });
  }
}

async function productForm(id, isCurrent) {
  const [product, cats] = await Promise.all([id ? api('GET', `/api/products/${encodeURIComponent(id)}`) : null, api('GET', '/api/categories')]);
  if (!isCurrent()) return;
  document.title = (product ? product.name : 'New product') + ' · Shop admin';
  const currency = product ? product.price.currency : 'USD';
  const exp = minorExponent(currency);
  render(html`<p><a href="/admin/products">← Products</a></p>
    <h1>${product ? product.name : 'New product'}</h1>
    <form class="medium box" id="product-form">
      <label for="sku">SKU</label><input id="sku" name="sku" required value="${product ? product.sku : ''}" ${product ? raw('readonly') : ''}>
      <label for="name">Name</label><input id="name" name="name" required value="${product ? product.name : ''}">
      <label for="description">Description</label><textarea class="full" id="description" name="description" rows="4">${product ? product.description : ''}</textarea>
      <label for="price">Price</label><input id="price" name="price" inputmode="decimal" required value="${product ? minorToDecimal(product.price.amount_minor, exp) : ''}">
      <label for="currency">Currency</label><input id="currency" name="currency" maxlength="3" required value="${currency}">
      <label for="category_id">Category</label><select id="category_id" name="category_id"><option value="">None</option>
        ${cats.categories.map((c) => html`<option value="${c.id}" ${product && product.category && product.category.id === c.id ? raw('selected') : ''}>${c.name}</option>`)}</select>
      ${product ? '' : html`<label for="stock_on_hand">Stock on hand</label><input id="stock_on_hand" name="stock_on_hand" type="number" min="0" value="0">`}
      <p><label class="inline"><input type="checkbox" name="active" ${!product || product.active ? raw('checked') : ''}> Active (shown in the shop)</label></p>
      <div id="product-status"></div>
      <p><button type="submit">${product ? 'Save' : 'Create'}</button>
        ${product ? html` <button type="button" class="danger" id="delete-product">Delete</button>` : ''}</p>
    </form>`);
  const form = document.getElementById('product-form');
  const del = document.getElementById('delete-product');
  if (del) del.addEventListener('click', async () => {
    if (!confirm('Delete this product? One that was ever ordered is deactivated instead, to keep order history.')) return;
    try {
      const kept = await api('DELETE', `/api/products/${product.id}`);
      flash = { kind: 'success', text: kept ? 'It was ordered before, so it is deactivated (kept for order history).' : 'Deleted.' };
      navigate('/admin/products');
    } catch (e) { show('product-status', 'error', errorText(e)); }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = Object.fromEntries(new FormData(form));
    const cur = String(d.currency).trim().toUpperCase();
    const amount = decimalToMinor(d.price, minorExponent(cur));
    if (amount === null) return show('product-status', 'error', `“${d.price}” is not a price in ${cur}.`);
    const body = { name: d.name, description: d.description, price: { amount_minor: amount, currency: cur }, category_id: d.category_id || null, active: d.active === 'on' };
    try {
      if (product) {
        // Only what this admin changed: another admin's change to another
        // field since the page was drawn stays (found in review: the whole
        // form went back, and a product pulled meanwhile was put on sale again).
        const changed = changedFields(body, { name: product.name, description: product.description || '', price: { amount_minor: product.price.amount_minor, currency: product.price.currency }, category_id: product.category ? product.category.id : null, active: product.active });
        if (!Object.keys(changed).length) return show('product-status', 'success', 'Nothing to save: nothing was changed.');
        await api('PUT', `/api/products/${product.id}`, { body: changed });
      } else {
        await api('POST', '/api/products', { body: { ...body, sku: d.sku, stock_on_hand: Number(d.stock_on_hand) || 0 } });
      }
      flash = { kind: 'success', text: product ? 'Saved.' : 'Created.' };
      navigate('/admin/products');
    } catch (e) {
      // Nothing was saved: a refused price (or currency) shows the stored
      // one again; the other fields keep what was typed, to send again.
      const text = errorText(e, { currency: cur });
      if (!product) return show('product-status', 'error', text);
      const stored = await api('GET', `/api/products/${product.id}`).catch(() => null);
      const put = stored ? restoreRefused(form, e, { 'price.amount_minor': ['price'], 'price.currency': ['price', 'currency'] }, {
        price: minorToDecimal(stored.price.amount_minor, minorExponent(stored.price.currency)), currency: stored.price.currency, name: stored.name, description: stored.description,
      }) : [];
      show('product-status', 'error', text + restoredText(form, put, e));
    }
  });
}

/**
 * The fields of `body` whose value differs from `shown` (what the form was
 * drawn from), compared as JSON: a save sends only what was changed.
 */
function changedFields(body, shown) {
  return Object.fromEntries(Object.entries(body).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(shown[k])));
}

/**
 * After a refused save, the inputs the refusal names show the stored value
 * again (the rest keep what was typed). `inputs` maps an API field or an
 * error code to input names (else the field's name is the input's);
 * `stored` is input name → stored value. The inputs changed back.
 */
function restoreRefused(form, e, inputs, stored) {
  const named = e.code === 'validation_failed' ? Object.keys((e.details && e.details.fields) || {}).flatMap((k) => inputs[k] || [k]) : inputs[e.code] || [];
  const put = [];
  for (const name of new Set(named)) {
    const input = form.elements[name];
    if (!input || !(name in stored) || input.value === String(stored[name] ?? '')) continue;
    input.value = String(stored[name] ?? '');
    put.push(input);
  }
  return put;
}

/** " Nothing was saved; Price shows the saved value again." for the inputs restored after `e`. */
function restoredText(form, inputs, e) {
  if (!inputs.length) return e.status >= 400 && e.status < 500 ? ' Nothing was saved.' : '';
  const labels = inputs.map((i) => { const l = form.ownerDocument.querySelector(`label[for="${CSS.escape(i.id)}"]`); return l ? l.textContent.trim() : i.name; });
  return ` Nothing was saved; ${labels.join(' and ')} ${labels.length === 1 ? 'shows' : 'show'} the saved value again.`;
}

// ------------------------------------------------------------------ categories

async function categoriesPage(isCurrent) {
  document.title = 'Categories · Shop admin';
  const { categories } = await api('GET', '/api/categories');
  if (!isCurrent()) return;
  render(html`${takeFlash()}<h1>Categories</h1>
    <div class="table-wrap" tabindex="0"><table><caption class="visually-hidden">Categories</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Slug <span class="muted">(its storefront link)</span></th><th scope="col">Description</th><th scope="col" class="num">Active products</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${categories.map((c) => html`<tr data-category="${c.id}" data-slug="${c.slug}">
        <td><form class="edit-category" id="catform-${c.id}" data-id="${c.id}"><label class="visually-hidden" for="cat-${c.id}">Name of ${c.slug}</label><input id="cat-${c.id}" name="name" value="${c.name}" size="16" required></form></td>
        <td><label class="visually-hidden" for="cat-slug-${c.id}">Slug of ${c.name}</label><input id="cat-slug-${c.id}" form="catform-${c.id}" name="slug" value="${c.slug}" size="14" required pattern="[a-z0-9]+(-[a-z0-9]+)*"></td>
        <td><label class="visually-hidden" for="cat-desc-${c.id}">Description of ${c.name}</label><input id="cat-desc-${c.id}" form="catform-${c.id}" name="description" value="${c.description || ''}" size="24"></td>
        <td class="num">${c.product_count}</td>
        <td><button type="submit" form="catform-${c.id}" class="secondary">Save<span class="visually-hidden"> ${c.name}</span></button> <button type="button" class="danger" data-delete="${c.id}">Delete<span class="visually-hidden"> ${c.name}</span></button></td></tr>`)}</tbody></table></div>
    <div id="categories-status"></div>
    <form class="narrow box" id="category-form">
      <h2>New category</h2>
      <label for="cat-name">Name</label><input id="cat-name" name="name" required>
      <label for="cat-slug">Slug (lower-case letters, digits, dashes)</label><input id="cat-slug" name="slug" required pattern="[a-z0-9]+(-[a-z0-9]+)*">
      <label for="cat-description">Description</label><input id="cat-description" name="description">
      <div id="category-status"></div>
      <p><button type="submit">Create</button></p>
    </form>`);
  for (const f of app.querySelectorAll('form.edit-category')) {
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      // Inputs in the row's other cells belong to this form (their `form` attribute).
      const d = Object.fromEntries(new FormData(f));
      const shown = categories.find((c) => c.id === f.dataset.id) || {};
      const body = changedFields({ name: d.name, slug: d.slug, description: d.description }, { name: shown.name, slug: shown.slug, description: shown.description || '' });
      if (!Object.keys(body).length) return show('categories-status', 'success', 'Nothing to save: nothing was changed.');
      try { await api('PUT', `/api/categories/${f.dataset.id}`, { body }); flash = { kind: 'success', text: 'Saved.' }; route(); } catch (e) {
        // Nothing was saved: a refused name, slug or description shows the stored one again.
        const stored = (await api('GET', '/api/categories').catch(() => ({ categories: [] }))).categories.find((c) => c.id === f.dataset.id);
        const put = stored ? restoreRefused(f, e, { slug_taken: ['slug'] }, { name: stored.name, slug: stored.slug, description: stored.description || '' }) : [];
        show('categories-status', 'error', errorText(e) + restoredText(f, put, e));
      }
    });
  }
  for (const b of app.querySelectorAll('button[data-delete]')) {
    b.addEventListener('click', async () => {
      if (!confirm('Delete this category?')) return;
      try { await api('DELETE', `/api/categories/${b.dataset.delete}`); flash = { kind: 'success', text: 'Deleted.' }; route(); } catch (e) { show('categories-status', 'error', errorText(e)); }
    });
  }
  const form = document.getElementById('category-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = Object.fromEntries(new FormData(form));
    try { await api('POST', '/api/categories', { body: { name: d.name, slug: d.slug, description: d.description || null } }); flash = { kind: 'success', text: 'Created.' }; route(); } catch (e) { show('category-status', 'error', errorText(e)); }
  });
}

// ------------------------------------------------------------------ emails and users

async function deliveriesPage(isCurrent) {
  document.title = 'Emails and SMS · Shop admin';
  const params = new URLSearchParams(location.search);
  const status = params.get('status') || '';
  const channel = params.get('channel') || '';
  const query = (status ? '&status=' + encodeURIComponent(status) : '') + (channel ? '&channel=' + encodeURIComponent(channel) : '');
  const result = await api('GET', `/api/admin/notifications?limit=50&page=${currentPage()}` + query);
  if (!isCurrent()) return;
  render(html`<h1>Email and SMS deliveries</h1>
    <form class="filters" id="delivery-filter"><label>Status<br><select name="status"><option value="">Any</option>
      ${['pending', 'sending', 'sent', 'logged', 'failed'].map((s) => html`<option ${s === status ? raw('selected') : ''}>${s}</option>`)}</select></label>
      <label>Channel<br><select name="channel"><option value="">Any</option>
      ${['email', 'sms'].map((c) => html`<option ${c === channel ? raw('selected') : ''}>${c}</option>`)}</select></label><button type="submit" class="secondary">Filter</button></form>
    <div class="table-wrap" tabindex="0"><table><caption class="visually-hidden">Email and SMS deliveries, newest first</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Channel</th><th scope="col">To</th><th scope="col">Subject</th><th scope="col">Event</th><th scope="col">Status</th><th scope="col" class="num">Attempts</th></tr></thead>
      <tbody>${result.notifications.map((n) => html`<tr><td>${formatDate(n.created_at)}</td><td>${n.channel}</td><td>${n.recipient}</td><td>${n.subject}</td><td>${n.event_type === 'promotion.send' ? 'promotion' : n.event_type}</td>
        <td><span class="badge ${n.status === 'failed' ? 'bad' : n.status === 'sent' || n.status === 'logged' ? 'ok' : 'warn'}">${n.status}</span>${n.last_error ? html`<br><span class="muted">${n.last_error}</span>` : ''}</td><td class="num">${n.attempts}</td></tr>`)}</tbody></table></div>
    ${pager('/admin/deliveries', result.total, 50)}`);
  document.getElementById('delivery-filter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    navigate('/admin/deliveries?status=' + encodeURIComponent(f.get('status')) + '&channel=' + encodeURIComponent(f.get('channel')));
  });
}

async function usersPage(isCurrent) {
  document.title = 'Users · Shop admin';
  const params = new URLSearchParams(location.search);
  const email = params.get('email') || '';
  const result = await api('GET', `/api/admin/users?limit=50&page=${currentPage()}` + (email ? '&email=' + encodeURIComponent(email) : ''));
  if (!isCurrent()) return;
  const me = currentUser();
  render(html`${takeFlash()}<h1>Users</h1>
    <form class="filters" id="user-search" role="search"><label>Email contains<br><input name="email" value="${email}"></label><button type="submit" class="secondary">Search</button></form>
    <div class="table-wrap" tabindex="0"><table><caption class="visually-hidden">Accounts, newest first</caption>
      <thead><tr><th scope="col">Email</th><th scope="col">Name</th><th scope="col">Joined</th><th scope="col">Role</th></tr></thead>
      <tbody>${result.users.map((u) => html`<tr><td>${u.email} ${u.email_verified ? '' : html`<span class="badge warn">unconfirmed</span>`}</td><td>${u.first_name} ${u.last_name}</td><td>${formatDate(u.created_at)}</td>
        <td>${u.id === me.id ? u.role : html`<label class="visually-hidden" for="role-${u.id}">Role of ${u.email}</label><select id="role-${u.id}" data-user="${u.id}">
          ${['customer', 'admin'].map((r) => html`<option ${r === u.role ? raw('selected') : ''}>${r}</option>`)}</select>`}</td></tr>`)}</tbody></table></div>
    ${pager('/admin/users', result.total, 50)}
    <div id="users-status"></div>`);
  document.getElementById('user-search').addEventListener('submit', (ev) => { ev.preventDefault(); navigate('/admin/users?email=' + encodeURIComponent(new FormData(ev.target).get('email'))); });
  for (const s of app.querySelectorAll('select[data-user]')) {
    s.addEventListener('change', async () => {
      try { await api('PUT', `/api/admin/users/${s.dataset.user}/role`, { body: { role: s.value } }); show('users-status', 'success', 'Role changed. It reaches their session within 15 minutes.'); } catch (e) {
        // The list drawn again shows the role the account still has.
        await redraw({ status: 'users-status', kind: 'error', text: errorText(e), focus: '#' + CSS.escape(s.id) });
      }
    });
  }
}

// Started: the "could not load" message of admin/index.html is not for this page.
document.getElementById('load-failed')?.remove();
route();
// The role stored at sign-in may have changed since (another admin promoted
// or demoted this account): ask once, and draw again if it did (found in
// review: a promoted admin saw "Admins only" until signing in again).
if (currentUser()) {
  api('GET', '/api/users/profile')
    .then(({ user }) => { const before = currentUser(); rememberUser(user); if (!before || before.role !== user.role) route(); })
    .catch(() => {});
}
