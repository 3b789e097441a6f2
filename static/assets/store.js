// The storefront: a reference client of the shop's API, in plain modules.
// Routes are client-side (the `files` component answers every page path
// with index.html); each view reads what it needs from the API.

import { api, ApiError, currentUser, signIn, signOut, signOutLocally, onSessionChange, rememberUser, newKey, cartToken, refreshSession } from './api.js';
import { formatMoney, formatDate, statusText, LINE_STATUS_TEXT, PAID_STATUSES, errorText, html, raw, markup, say, minorExponent, decimalToMinor, minorToDecimal } from './format.js';

const app = document.getElementById('app');
const PAGE_SIZE = 12;

// ------------------------------------------------------------------ shell

function render(view) {
  app.innerHTML = markup(view);
}

// A picture that cannot be loaded (gone from its host, refused) is left out
// rather than shown broken. `error` does not bubble: caught on the way down.
app.addEventListener('error', (ev) => { if (ev.target instanceof HTMLImageElement) ev.target.remove(); }, true);

function setTitle(text) {
  document.title = text ? `${text} · Shop` : 'Shop';
}

/** Move focus to the new page's heading, so keyboard and screen-reader users follow. */
function focusHeading() {
  const h = app.querySelector('h1');
  if (h) { h.setAttribute('tabindex', '-1'); h.focus({ preventScroll: true }); }
}


function notice(kind, text) {
  return html`<div class="notice ${kind}">${text}</div>`;
}

/** Show a notice in `slot` (an element of the page) and say it. */
function show(slot, kind, text) {
  if (slot) slot.innerHTML = markup(notice(kind, text));
  say(text);
}

/** Show work in progress ("Placing your order…") in `slot`, and say it. */
function progress(slot, text) {
  slot.innerHTML = markup(html`<p class="loading">${text}</p>`);
  say(text);
}

let flash = null;
/** A message shown (and said) on the next page (after a redirect or a redraw). */
function flashNext(kind, text) { flash = { kind, text }; }
function takeFlash() {
  const f = flash;
  flash = null;
  if (!f) return raw('');
  say(f.text);
  return notice(f.kind, f.text);
}

// `focus: false` keeps focus where it is (typing in the search box, a
// filter control) instead of moving it to the new page's heading.
export function navigate(path, { replace = false, focus = true } = {}) {
  if (replace) history.replaceState({}, '', path); else history.pushState({}, '', path);
  return route({ focus });
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a');
  if (!a || a.target || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || /^\/(api|admin|docs|openapi)/.test(url.pathname) || a.hasAttribute('download')) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
// Back from Stripe's page, a page restored from the back/forward cache
// would still say it is taking you there: draw it again.
window.addEventListener('pageshow', (ev) => { if (ev.persisted) { updateHeader(); route(); } });

function updateHeader() {
  const user = currentUser();
  const account = document.getElementById('account-link');
  account.textContent = user ? `Account (${user.first_name || user.email})` : 'Sign in';
  account.setAttribute('href', user ? '/account' : '/account/sign-in');
  document.getElementById('admin-link').hidden = !(user && user.role === 'admin');
}

async function refreshCartCount(cart) {
  const el = document.getElementById('cart-count');
  try {
    const c = cart || (currentUser() || cartToken() ? await api('GET', '/api/cart', { cart: true }) : null);
    el.textContent = c ? String(c.item_count) : '0';
    // This tab's count may be the request that merged a guest cart (another
    // tab signed in, and this tab sent the token first): say so here, since
    // the signing-in tab then hears of no merge (found in review).
    if (!cart && c && c.merged_guest_cart && c.merged_guest_cart.merged) say(mergedText(c.merged_guest_cart));
  } catch { el.textContent = '?'; }
}

onSessionChange((user, reason) => {
  updateHeader();
  refreshCartCount();
  if (reason === 'signed_out_elsewhere' || reason === 'signed_in_elsewhere') {
    flashNext('warn', user ? `You are now signed in as ${user.email} (in another tab).` : 'You were signed out in another tab.');
    route();
    return;
  }
  if (reason === 'session_ended') {
    flashNext('warn', 'Your session has ended, so you were signed out. Please sign in again.');
    navigate('/account/sign-in?next=' + encodeURIComponent(location.pathname + location.search));
  }
});

// Header search: typing searches as you go (debounced), Enter searches at once.
const searchInput = document.getElementById('search');
let searchTimer;
// While typing, focus stays in the box (found in review: each pause moved
// it to the results' heading, so the rest of the typing went nowhere).
searchInput.addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => searchFor(searchInput.value, { focus: false }), 250);
});
document.getElementById('search-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  clearTimeout(searchTimer);
  searchFor(searchInput.value);
});
function searchFor(text, { focus = true } = {}) {
  const params = new URLSearchParams(location.pathname === '/' ? location.search : '');
  if (text.trim()) params.set('q', text.trim()); else params.delete('q');
  params.delete('page');
  if (params.has('q') && !params.has('sort')) params.delete('sort');
  const target = '/' + (params.toString() ? '?' + params : '');
  navigate(target, { replace: location.pathname === '/', focus });
}

// ------------------------------------------------------------------ routes

const routes = [
  [/^\/$/, listing],
  [/^\/products\/([^/]+)$/, productPage],
  [/^\/cart$/, cartPage],
  [/^\/checkout$/, checkoutPage],
  [/^\/checkout\/success$/, checkoutSuccess],
  [/^\/checkout\/cancelled$/, checkoutCancelled],
  [/^\/account\/sign-in$/, signInPage],
  [/^\/account\/register$/, registerPage],
  [/^\/account\/verify-email$/, verifyEmailPage],
  [/^\/account\/forgot-password$/, forgotPasswordPage],
  [/^\/account\/reset-password$/, resetPasswordPage],
  [/^\/account$/, accountPage],
  [/^\/account\/orders$/, ordersPage],
  [/^\/account\/orders\/([^/]+)$/, orderPage],
  [/^\/account\/orders\/([^/]+)\/invoice$/, invoicePage],
];

let routeSeq = 0;
// Whether the page being drawn moves focus to its heading (false while
// typing in the search box, after a filter control or an in-page change).
let routeFocus = true;
// `popstate` calls it with its event: focus moves then, as after a link.
// `loading: false` draws the page again without "Loading…" in between
// (a redraw after an in-page change: the page and its scroll stay).
async function route({ focus = true, loading = true } = {}) {
  const seq = ++routeSeq;
  routeFocus = focus;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const match = routes.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
  if (path !== '/') searchInput.value = '';
  if (!match) {
    setTitle('Not found');
    render(html`<h1>Page not found</h1><p>There is nothing at this address. <a href="/">Back to the shop</a></p>`);
    if (seq > 1 && focus) focusHeading();
    return;
  }
  const [m, view] = match;
  if (loading) render(html`<p class="loading">Loading…</p>`);
  try {
    await view(...m.slice(1).map(decodeURIComponent), () => seq === routeSeq);
  } catch (e) {
    if (seq !== routeSeq) return;
    if (e instanceof ApiError && e.status === 401) {
      flashNext('warn', 'Please sign in to continue.');
      return navigate('/account/sign-in?next=' + encodeURIComponent(location.pathname + location.search), { replace: true });
    }
    render(html`<h1>Something went wrong</h1>${notice('error', errorText(e))}<p><a href="${location.pathname + location.search}">Try again</a></p>`);
  }
  // After a navigation, focus follows to the new page's heading; on the
  // first load it stays at the top, where the skip link is.
  if (seq === routeSeq && seq > 1 && focus) focusHeading();
  return seq === routeSeq;
}

/**
 * Draw the page again from the API's state after an in-page change, so
 * every control shows what is stored (a refused value does not stay in
 * its box), then show `text` in the slot `status` (said either way) and
 * put focus back on `focus` (a selector; the heading when it is gone).
 */
async function redraw({ status, kind, text, focus }) {
  if (!(await route({ focus: false, loading: false }))) return;
  if (text) show(document.getElementById(status), kind, text);
  const control = focus && app.querySelector(focus);
  if (control) control.focus(); else focusHeading();
}

function requireUser() {
  if (currentUser()) return true;
  // Keep a message that says why (signed out in another tab).
  if (!flash) flashNext('warn', 'Please sign in to continue.');
  navigate('/account/sign-in?next=' + encodeURIComponent(location.pathname + location.search), { replace: true });
  return false;
}

// ------------------------------------------------------------------ browse

let categoriesCache = null;
async function categories() {
  if (!categoriesCache) categoriesCache = (await api('GET', '/api/categories', { auth: false })).categories;
  return categoriesCache;
}

function availability(p) {
  if (!p.in_stock) return html`<span class="badge bad">Out of stock</span>`;
  if (p.available <= 5) return html`<span class="badge warn">Only ${p.available} left</span>`;
  return html`<span class="badge ok">In stock</span>`;
}

/** A product's pictures in display order: uploaded images first, then its external image URLs. */
function productPictures(p) {
  const uploaded = (p.images || []).map((i) => ({ url: i.url, alt: i.alt || p.name }));
  return uploaded.concat((p.image_urls || []).map((url) => ({ url, alt: p.name })));
}

function productCard(p) {
  const [picture] = productPictures(p);
  // Decorative here: the product's name is the card's heading, right below.
  return html`<li class="card" data-product-id="${p.id}">
    ${picture ? html`<img class="thumb" src="${picture.url}" alt="" loading="lazy" decoding="async" width="320" height="240">` : ''}
    <h3><a href="/products/${p.id}">${p.name}</a></h3>
    <span class="muted">${p.category ? p.category.name : ''}</span>
    <span class="price">${formatMoney(p.price)}</span>
    ${availability(p)}
    <div class="actions"><button type="button" data-add="${p.id}" ${p.in_stock ? '' : raw('disabled')}>Add to cart<span class="visually-hidden">: ${p.name}</span></button></div>
  </li>`;
}

async function listing(isCurrent) {
  const params = new URLSearchParams(location.search);
  const q = params.get('q') || '';
  // Not while someone types in it: the trimmed query would eat a space.
  if (document.activeElement !== searchInput) searchInput.value = q;
  const page = Math.max(1, Number(params.get('page')) || 1);
  const query = new URLSearchParams({ limit: PAGE_SIZE, page });
  for (const k of ['q', 'category', 'min_price', 'max_price', 'currency', 'in_stock', 'sort']) if (params.get(k)) query.set(k, params.get(k));
  const [cats, result] = await Promise.all([categories(), api('GET', '/api/products?' + query, { auth: false })]);
  if (!isCurrent()) return;
  const started = performance.now();
  // Prices are filtered in minor units of one currency: the one a price
  // filter was set in, else the listing's first product's.
  const currency = params.get('currency') || (result.products[0] ? result.products[0].price.currency : 'USD');
  const exp = minorExponent(currency);
  const priceValue = (k) => (params.get(k) ? minorToDecimal(Number(params.get(k)), exp) : '');
  const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
  const pageLink = (n) => { const p = new URLSearchParams(params); p.set('page', n); return '/?' + p; };
  const category = cats.find((c) => c.slug === params.get('category'));
  setTitle(q ? `Search: ${q}` : category ? category.name : '');
  render(html`
    ${takeFlash()}
    <h1>${q ? `Results for “${q}”` : category ? category.name : 'All products'}</h1>
    <form class="filters" id="filters" aria-label="Filter products">
      <label>Category<br><select name="category"><option value="">All categories</option>
        ${cats.map((c) => html`<option value="${c.slug}" ${c.slug === params.get('category') ? raw('selected') : ''}>${c.name} (${c.product_count})</option>`)}
      </select></label>
      <label>Min price (${currency})<br><input name="min_price" inputmode="decimal" size="7" value="${priceValue('min_price')}"></label>
      <label>Max price (${currency})<br><input name="max_price" inputmode="decimal" size="7" value="${priceValue('max_price')}"></label>
      <label class="inline"><input type="checkbox" name="in_stock" value="true" ${params.get('in_stock') === 'true' ? raw('checked') : ''}> In stock only</label>
      <label>Sort<br><select name="sort">
        ${[['', q ? 'Best match' : 'Newest'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['name', 'Name']].map(([v, t]) => html`<option value="${v}" ${v === (params.get('sort') || '') ? raw('selected') : ''}>${t}</option>`)}
      </select></label>
      <button type="submit" class="secondary">Apply</button>
    </form>
    <div id="filter-error"></div>
    <p class="muted">${result.total} ${result.total === 1 ? 'product' : 'products'}</p>
    ${result.products.length ? html`<ul class="grid" id="products">${result.products.map(productCard)}</ul>` : html`<p>No products match. <a href="/">See all products</a></p>`}
    <div id="add-status"></div>
    ${pages > 1 ? html`<nav class="pager" aria-label="Pages">
      ${page > 1 ? html`<a href="${pageLink(page - 1)}" rel="prev">Previous</a>` : ''}
      <span>Page ${page} of ${pages}</span>
      ${page < pages ? html`<a href="${pageLink(page + 1)}" rel="next">Next</a>` : ''}
    </nav>` : ''}
  `);
  window.__lastListingRenderMs = performance.now() - started;
  // Focus stayed in the search box or on a filter: the new count is said.
  if (!routeFocus) say(`${result.total} ${result.total === 1 ? 'product' : 'products'}${q ? ` for “${q}”` : ''}`);
  // A select or the checkbox applies at once and keeps focus on itself
  // (arrow keys on a closed select change it, one page per key).
  document.getElementById('filters').addEventListener('change', (ev) => { if (ev.target.tagName === 'SELECT' || ev.target.type === 'checkbox') applyFilters(params, currency, ev.target.name); });
  document.getElementById('filters').addEventListener('submit', (ev) => { ev.preventDefault(); applyFilters(params, currency); });
  bindAddButtons();
}

function applyFilters(current, currency, keepFocusOn = null) {
  const exp = minorExponent(currency);
  const form = document.getElementById('filters');
  const data = new FormData(form);
  const next = new URLSearchParams();
  if (current.get('q')) next.set('q', current.get('q'));
  if (data.get('category')) next.set('category', data.get('category'));
  for (const k of ['min_price', 'max_price']) {
    const text = String(data.get(k) || '').trim();
    if (!text) continue;
    const minor = decimalToMinor(text, exp);
    if (minor === null) {
      show(document.getElementById('filter-error'), 'error', `“${text}” is not a price.`);
      return;
    }
    next.set(k, minor);
    // The amounts mean this currency's minor units: only its products.
    next.set('currency', currency);
  }
  if (data.get('in_stock')) next.set('in_stock', 'true');
  if (data.get('sort')) next.set('sort', data.get('sort'));
  if (!keepFocusOn) return navigate('/?' + next);
  navigate('/?' + next, { focus: false }).then(() => {
    const control = document.querySelector(`#filters [name="${keepFocusOn}"]`);
    if (control) control.focus();
  });
}

function bindAddButtons() {
  for (const b of app.querySelectorAll('button[data-add]')) {
    b.addEventListener('click', async () => {
      const status = document.getElementById('add-status');
      const qtyInput = document.getElementById('quantity');
      const quantity = qtyInput ? Number(qtyInput.value.trim() || 1) : 1;
      if (!Number.isInteger(quantity) || quantity < 1) return show(status, 'error', `“${qtyInput.value}” is not a quantity: type a whole number.`);
      // The card's heading, or the product page's.
      const name = ((b.closest('li.card') || app).querySelector('h3, h1') || { textContent: '' }).textContent.trim();
      b.disabled = true;
      try {
        const cart = await api('POST', '/api/cart/items', { body: { product_id: b.dataset.add, quantity }, cart: true });
        refreshCartCount(cart);
        rememberPrices(cart);
        show(status, 'success', `Added to your cart: ${quantity > 1 ? `${quantity} × ` : ''}${name}.`);
      } catch (e) {
        show(status, 'error', errorText(e));
      } finally {
        b.disabled = false;
      }
    });
  }
}

async function productPage(id, isCurrent) {
  let p;
  try {
    p = await api('GET', `/api/products/${encodeURIComponent(id)}`, { auth: false });
  } catch (e) {
    if (e.status === 404 || e.status === 400) {
      render(html`<h1>Product not found</h1><p>This product is not sold here (any more). <a href="/">Back to the shop</a></p>`);
      return;
    }
    throw e;
  }
  if (!isCurrent()) return;
  setTitle(p.name);
  const pictures = productPictures(p);
  render(html`
    <p><a href="/">← All products</a>${p.category ? html` · <a href="/?category=${p.category.slug}">${p.category.name}</a>` : ''}</p>
    <article class="two-col">
      <div>
        ${pictures.length ? html`<div class="gallery">${pictures.map((pic, n) => html`<img class="${n === 0 ? 'main' : 'more'}" src="${pic.url}" alt="${pic.alt}" decoding="async" ${n === 0 ? '' : raw('loading="lazy"')} width="640" height="480">`)}</div>` : ''}
        <h1>${p.name}</h1>
        <p>${p.description}</p>
        <p class="muted">SKU ${p.sku}</p>
      </div>
      <section class="box stack" aria-label="Buy">
        <p class="price">${formatMoney(p.price)}</p>
        <p>${availability(p)} ${p.in_stock ? html`<span class="muted">${p.available} available</span>` : ''}</p>
        ${p.in_stock ? html`<label for="quantity">Quantity</label><input id="quantity" type="number" min="1" max="${Math.min(99, p.available)}" value="1">` : ''}
        <button type="button" data-add="${p.id}" ${p.in_stock ? '' : raw('disabled')}>Add to cart</button>
        <div id="add-status"></div>
      </section>
    </article>
  `);
  bindAddButtons();
}

// ------------------------------------------------------------------ cart

// The API prices the cart live and flags lines it cannot sell; a price
// that merely changed is not an issue for it. The storefront remembers the
// price each line had when the shopper last saw it and points out changes.
const SEEN_PRICES = 'shop.seenPrices';

function seenPrices() {
  try { return JSON.parse(localStorage.getItem(SEEN_PRICES) || '{}'); } catch { return {}; }
}

function rememberPrices(cart) {
  const seen = seenPrices();
  for (const l of cart.lines) if (l.unit_price) seen[l.product_id] = l.unit_price;
  localStorage.setItem(SEEN_PRICES, JSON.stringify(seen));
}

/** Lines whose price is not the one the shopper saw: `{ product_id: previous price }`. */
function priceChanges(cart) {
  const seen = seenPrices();
  const changed = {};
  for (const l of cart.lines) {
    const before = seen[l.product_id];
    if (before && l.unit_price && (before.amount_minor !== l.unit_price.amount_minor || before.currency !== l.unit_price.currency)) changed[l.product_id] = before;
  }
  return changed;
}

function lineIssue(line, previousPrice) {
  if (line.status === 'ok') {
    return previousPrice ? html`<span class="badge warn" data-price-changed="true">Price changed from ${formatMoney(previousPrice)}</span>` : '';
  }
  let text = LINE_STATUS_TEXT[line.status] || line.status;
  if (line.status === 'insufficient_stock') text = `Only ${line.available} left: lower the quantity`;
  return html`<span class="badge bad" data-line-status="${line.status}">${text}</span>`;
}

async function cartPage(isCurrent) {
  const cart = await api('GET', '/api/cart', { cart: true });
  if (!isCurrent()) return;
  refreshCartCount(cart);
  const changed = priceChanges(cart);
  rememberPrices(cart);
  setTitle('Cart');
  if (!cart.lines.length) {
    render(html`${takeFlash()}<h1>Your cart</h1><p>Your cart is empty. <a href="/">Start shopping</a></p>`);
    return;
  }
  render(html`
    ${takeFlash()}
    <h1>Your cart</h1>
    ${cart.merged_guest_cart ? notice('success', mergedText(cart.merged_guest_cart)) : ''}
    ${cart.has_issues ? notice('warn', 'Some items cannot be bought as they are. Change or remove them to check out.') : ''}
    ${Object.keys(changed).length ? notice('warn', 'Some prices have changed since you added the items. The cart shows the current prices.') : ''}
    <div class="table-wrap" tabindex="0"><table id="cart-lines">
      <caption class="visually-hidden">Items in your cart</caption>
      <thead><tr><th scope="col">Product</th><th scope="col" class="num">Price</th><th scope="col">Quantity</th><th scope="col" class="num">Total</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>
      ${cart.lines.map((l) => html`<tr data-product-id="${l.product_id}" data-status="${l.status}">
        <td>${l.name ? html`<a href="/products/${l.product_id}">${l.name}</a>` : 'Unavailable product'} ${lineIssue(l, changed[l.product_id])}</td>
        <td class="num">${formatMoney(l.unit_price)}</td>
        <td><label class="visually-hidden" for="qty-${l.product_id}">Quantity of ${l.name || 'product'}</label>
          <input class="qty" id="qty-${l.product_id}" type="number" min="1" max="99" value="${l.quantity}" data-qty="${l.product_id}"></td>
        <td class="num">${formatMoney(l.line_total)}</td>
        <td><button type="button" class="secondary" data-remove="${l.product_id}">Remove<span class="visually-hidden"> ${l.name || ''}</span></button></td>
      </tr>`)}
      </tbody>
    </table></div>
    <div id="cart-status"></div>
    <p>Subtotal: <strong id="subtotal">${formatMoney(cart.subtotal)}</strong></p>
    <p><a class="button" id="checkout-link" href="/checkout" ${cart.has_issues ? raw('aria-disabled="true"') : ''}>Checkout</a></p>
  `);
  const status = document.getElementById('cart-status');
  const lineOf = (id) => cart.lines.find((l) => l.product_id === id);
  // A change is drawn from the cart the API then holds: a refused quantity
  // does not stay in its box (the stored one is shown again, with why).
  for (const input of app.querySelectorAll('input[data-qty]')) {
    input.addEventListener('change', async () => {
      const line = lineOf(input.dataset.qty);
      const focus = '#' + CSS.escape(`qty-${input.dataset.qty}`);
      const typed = input.value.trim();
      const quantity = Number(typed);
      if (!typed || !Number.isInteger(quantity) || quantity < 1) {
        input.value = String(line.quantity);
        show(status, 'error', `${typed ? `“${typed}” is not a quantity` : 'No quantity was typed'}: type a whole number from 1 to 99, or remove the product. The cart still holds ${line.quantity}.`);
        return;
      }
      try {
        const updated = await api('PUT', `/api/cart/items/${input.dataset.qty}`, { body: { quantity }, cart: true });
        await redraw({ status: 'cart-status', kind: 'success', text: `${line.name || 'The product'}: quantity ${quantity}. Subtotal ${formatMoney(updated.subtotal)}.`, focus });
      } catch (e) {
        await redraw({ status: 'cart-status', kind: 'error', text: errorText(e), focus });
      }
    });
  }
  for (const b of app.querySelectorAll('button[data-remove]')) {
    b.addEventListener('click', async () => {
      const line = lineOf(b.dataset.remove);
      try {
        await api('DELETE', `/api/cart/items/${b.dataset.remove}`, { cart: true });
        // The line is gone, and focus with it: to the heading.
        await redraw({ status: 'cart-status', kind: 'success', text: `${line.name || 'The product'} was removed from your cart.` });
      } catch (e) { await redraw({ status: 'cart-status', kind: 'error', text: errorText(e), focus: `button[data-remove="${CSS.escape(b.dataset.remove)}"]` }); }
    });
  }
  document.getElementById('checkout-link').addEventListener('click', (ev) => {
    if (cart.has_issues) { ev.preventDefault(); ev.stopPropagation(); show(status, 'error', 'Some items need your attention before checkout.'); }
  }, true);
}

function mergedText(m) {
  const n = m.merged;
  let text = n ? `We added ${n} ${n === 1 ? 'item' : 'items'} from the cart you filled before signing in.` : 'The cart you filled before signing in was empty or could not be added.';
  if (m.skipped && m.skipped.length) text += ` ${m.skipped.length} could not be added (sold out or no longer sold).`;
  return text;
}

// ------------------------------------------------------------------ checkout

function addressLine(a) {
  return [a.name, a.line1, a.line2, `${a.postal_code} ${a.city}`, a.region, a.country].filter(Boolean).join(', ');
}

const ADDRESS_FIELDS = ['name', 'line1', 'line2', 'city', 'region', 'postal_code', 'country'];

/** The inputs of a postal address (named as the API names them), filled from `a`; `id(k)` is each input's id. */
function addressFields(id, a = {}) {
  const field = (k, label, attrs) => html`<label for="${id(k)}">${label}</label><input id="${id(k)}" name="${k}" ${raw(attrs)} value="${a[k] || ''}">`;
  return html`${field('name', 'Full name', 'autocomplete="name" required')}
    ${field('line1', 'Address', 'autocomplete="address-line1" required')}
    ${field('line2', 'Address line 2 (optional)', 'autocomplete="address-line2"')}
    ${field('city', 'City', 'autocomplete="address-level2" required')}
    ${field('region', 'State or region (optional)', 'autocomplete="address-level1"')}
    ${field('postal_code', 'Postal code', 'autocomplete="postal-code" required')}
    ${field('country', 'Country (two letters, e.g. US)', 'autocomplete="country" maxlength="2" required')}`;
}

/** The address typed into `form`'s inputs, trimmed, empty ones left out (the API's optional fields). */
function addressFrom(form) {
  return Object.fromEntries(ADDRESS_FIELDS.map((k) => [k, String(form.elements[k].value).trim()]).filter(([, v]) => v));
}

async function checkoutPage(isCurrent) {
  if (!requireUser()) return;
  const [cart, book] = await Promise.all([api('GET', '/api/cart'), api('GET', '/api/users/addresses').catch(() => ({ addresses: [] }))]);
  if (!isCurrent()) return;
  setTitle('Checkout');
  if (!cart.lines.length) {
    render(html`<h1>Checkout</h1><p>Your cart is empty. <a href="/">Start shopping</a></p>`);
    return;
  }
  const user = currentUser();
  const saved = book.addresses || [];
  render(html`
    <h1>Checkout</h1>
    <div class="two-col">
      <form class="box" id="checkout-form" novalidate>
        <h2>Shipping address</h2>
        ${saved.length ? html`<fieldset id="saved-addresses"><legend class="visually-hidden">Choose an address</legend>
          ${saved.map((a, n) => html`<p><label class="inline"><input type="radio" name="address_choice" value="${a.id}" ${n === 0 ? raw('checked') : ''}> ${a.label ? html`<strong>${a.label}</strong>: ` : ''}${addressLine(a)}</label></p>`)}
          <p><label class="inline"><input type="radio" name="address_choice" value="new"> A new address</label></p>
        </fieldset>` : ''}
        <div id="new-address" ${saved.length ? raw('hidden') : ''}>
          ${addressFields((k) => (k === 'postal_code' ? 'ship-postal' : `ship-${k}`), { name: [user.first_name, user.last_name].filter(Boolean).join(' '), country: 'US' })}
          <p><label class="inline"><input type="checkbox" id="save-address" ${saved.length < 20 ? raw('checked') : raw('disabled')}> Save it in my address book</label></p>
        </div>
        <div id="checkout-status"></div>
        <p><button type="submit" id="place-order">Place order and pay</button></p>
      </form>
      <section class="box" aria-label="Order summary">
        <h2>Summary</h2>
        <ul>${cart.lines.map((l) => html`<li>${l.quantity} × ${l.name} — ${formatMoney(l.line_total)} ${lineIssue(l)}</li>`)}</ul>
        <p>Total: <strong>${formatMoney(cart.subtotal)}</strong></p>
        ${cart.has_issues ? notice('warn', html`Some items need your attention. <a href="/cart">Review your cart</a>`) : ''}
      </section>
    </div>
  `);
  const form = document.getElementById('checkout-form');
  const button = document.getElementById('place-order');
  const status = document.getElementById('checkout-status');
  const newAddress = document.getElementById('new-address');
  const choice = () => (form.querySelector('input[name=address_choice]:checked') || { value: 'new' }).value;
  form.addEventListener('change', (ev) => { if (ev.target.name === 'address_choice') newAddress.hidden = choice() !== 'new'; });
  // One key per checkout attempt of this cart version: a double click, or a
  // retry after a network error, sends the same key and gets the same order.
  const keyName = `shop.checkoutKey.${user.id}.${cart.version}`;
  let placing = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (placing) return;
    const picked = choice();
    const address = addressFrom(form);
    const body = picked === 'new' ? { shipping_address: address } : { shipping_address_id: picked };
    placing = true;
    button.disabled = true;
    progress(status, 'Placing your order…');
    let key = sessionStorage.getItem(keyName);
    if (!key) { key = newKey(); sessionStorage.setItem(keyName, key); }
    let order;
    try {
      order = await placeOrder(body, key, user.id);
    } catch (e) {
      // This cart was placed already (by an attempt whose answer was lost,
      // or another tab): that order is the one to pay.
      const existing = e.code === 'cart_already_ordered' && e.details && e.details.order_id;
      if (existing) {
        sessionStorage.removeItem(keyName);
        flashNext('warn', 'This cart was already placed as an order: here it is.');
        return navigate(`/account/orders/${encodeURIComponent(existing)}`);
      }
      // This checkout's key placed an order already, sent with other
      // details (after an attempt whose answer was lost, the address was
      // changed): that order is in the shopper's orders (found in review:
      // the key was dropped and the emptied cart was all they saw).
      if (e.code === 'idempotency_key_reused') {
        sessionStorage.removeItem(keyName);
        flashNext('warn', 'Your order was already placed when the connection failed, with the details you sent first. Check it in your orders.');
        return navigate('/account/orders');
      }
      show(status, 'error', errorText(e));
      placing = false;
      button.disabled = false;
      // Disabling the button moved focus away: back to it, for keyboards.
      button.focus();
      // A refused request may be corrected and sent again with a new key.
      if (e.status && e.status < 500 && e.code !== 'request_in_progress') sessionStorage.removeItem(keyName);
      return;
    }
    sessionStorage.removeItem(keyName);
    if (picked === 'new' && document.getElementById('save-address').checked) {
      // Best effort: the order already has its own copy of the address.
      await api('POST', '/api/users/addresses', { body: address, asUser: user.id }).catch(() => {});
    }
    refreshCartCount();
    // Nothing to pay (every line free): the order is paid as it is placed.
    if (order.status !== 'pending_payment') {
      flashNext('success', 'Thank you: your order is placed. It needed no payment.');
      return navigate(`/account/orders/${order.id}`);
    }
    await payOrder(order.id, status);
  });
}

/**
 * `POST /api/orders`, retried with the same key while the first is in
 * flight. After an attempt whose answer was lost, `insufficient_stock` may
 * be that attempt holding the last units before it committed (the API says
 * so): asked again with the key, the answer is its order (found in review:
 * the shopper was told the items were gone, for an order that existed).
 */
async function placeOrder(body, key, asUser) {
  let unclear = false;
  for (let attempt = 0; ; attempt++) {
    try {
      return await api('POST', '/api/orders', { body, headers: { 'idempotency-key': key }, asUser });
    } catch (e) {
      const lost = e.status === 0 || e.status >= 502;
      const retry = e.code === 'request_in_progress' || lost || (unclear && e.code === 'insufficient_stock');
      unclear = unclear || lost;
      if (retry && attempt < 5) {
        await new Promise((r) => setTimeout(r, 700));
        continue;
      }
      throw e;
    }
  }
}

/** Start Stripe Checkout for the order and go there; explain when it cannot. */
async function payOrder(orderId, status) {
  progress(status, 'Taking you to the secure payment page…');
  try {
    const session = await api('POST', '/api/payments/checkout-session', { body: { order_id: orderId } });
    // Back from Stripe's page lands on the order and its Pay now button,
    // not on the checkout of a cart the order emptied (found in review).
    history.replaceState(null, '', `/account/orders/${orderId}`);
    location.assign(session.url);
  } catch (e) {
    if (e.code === 'nothing_to_pay') {
      flashNext('success', 'This order needed no payment: it is paid.');
      return navigate(`/account/orders/${orderId}`);
    }
    show(status, e.code === 'payments_not_configured' ? 'warn' : 'error',
      html`${errorText(e)} <a href="/account/orders/${orderId}">See your order</a>`);
  }
}

async function checkoutSuccess(isCurrent) {
  if (!requireUser()) return;
  const sessionId = new URLSearchParams(location.search).get('session_id');
  setTitle('Thank you');
  if (!sessionId) {
    render(html`<h1>Payment</h1><p>We did not get a payment reference. <a href="/account/orders">See your orders</a></p>`);
    return;
  }
  render(html`<h1>Confirming your payment…</h1><p class="loading">One moment.</p>`);
  const result = await api('GET', `/api/payments/checkout-session/${encodeURIComponent(sessionId)}`);
  const order = await api('GET', `/api/orders/${result.order_id}`);
  if (!isCurrent()) return;
  const paid = PAID_STATUSES.includes(order.status);
  const pending = order.status === 'pending_payment';
  // An order that ended before the money arrived (cancelled, expired) is
  // refunded automatically: say so, not "thank you".
  const ended = !paid && !pending;
  render(html`
    <h1>${paid ? 'Thank you for your order!' : ended ? 'This order has ended' : 'Payment not confirmed yet'}</h1>
    ${paid ? notice('success', html`Your payment was received. Order status: <strong id="order-status">${statusText(order.status)}</strong>`)
           : ended ? notice('warn', html`The order ended before the payment arrived, so any money taken is refunded to you automatically. Status: <strong id="order-status">${statusText(order.status)}</strong>`)
           : notice('warn', html`Stripe has not confirmed the payment yet; we will update your order as soon as it does. Status: <strong id="order-status">${statusText(order.status)}</strong>`)}
    ${orderSummary(order)}
    <p><a href="/account/orders/${order.id}">Order details</a> · <a href="/">Continue shopping</a></p>
  `);
  refreshCartCount();
}

async function checkoutCancelled() {
  setTitle('Payment cancelled');
  render(html`<h1>Payment cancelled</h1><p>You left the payment page, so nothing was charged. Your order waits for payment for a while: you can pay it from <a href="/account/orders">your orders</a>.</p>`);
}

function orderSummary(order) {
  return html`<div class="table-wrap" tabindex="0"><table>
    <caption class="visually-hidden">Order lines</caption>
    <thead><tr><th scope="col">Product</th><th scope="col" class="num">Price</th><th scope="col" class="num">Qty</th><th scope="col" class="num">Total</th></tr></thead>
    <tbody>${order.lines.map((l) => html`<tr><td>${l.name}</td><td class="num">${formatMoney(l.unit_price)}</td><td class="num">${l.quantity}</td><td class="num">${formatMoney(l.line_total)}</td></tr>`)}</tbody>
    <tfoot><tr><th scope="row" colspan="3">Total</th><td class="num"><strong>${formatMoney(order.total)}</strong></td></tr>
    ${order.refunded.amount_minor > 0 ? html`<tr><th scope="row" colspan="3">Refunded</th><td class="num" id="refunded">${formatMoney(order.refunded)}</td></tr>` : ''}</tfoot>
  </table></div>`;
}

// ------------------------------------------------------------------ account

/** Where to go after signing in: a path of this shop, never another origin. */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next') || '/account';
  try {
    const url = new URL(next, location.origin);
    if (next.startsWith('/') && url.origin === location.origin) return url.pathname + url.search + url.hash;
  } catch { /* not a URL */ }
  return '/account';
}

async function signInPage() {
  setTitle('Sign in');
  render(html`
    ${takeFlash()}
    <h1>Sign in</h1>
    <form class="narrow box" id="sign-in">
      <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" required>
      <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
      <div id="form-status"></div>
      <p><button type="submit">Sign in</button></p>
      <p><a href="/account/register?next=${encodeURIComponent(nextPath())}">Create an account</a> · <a href="/account/forgot-password">Forgot your password?</a></p>
    </form>`);
  const form = document.getElementById('sign-in');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const { merged } = await signIn(String(data.get('email')).trim(), String(data.get('password')));
      if (merged && merged.merged) flashNext('success', mergedText(merged));
      navigate(merged && merged.merged ? '/cart' : nextPath());
    } catch (e) {
      show(document.getElementById('form-status'), 'error', errorText(e));
      button.disabled = false;
      button.focus();
    }
  });
}

async function registerPage() {
  setTitle('Create an account');
  render(html`
    <h1>Create an account</h1>
    <form class="narrow box" id="register">
      <label for="first_name">First name</label><input id="first_name" name="first_name" autocomplete="given-name" required>
      <label for="last_name">Last name</label><input id="last_name" name="last_name" autocomplete="family-name" required>
      <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" required>
      <label for="password">Password (at least 10 characters)</label><input id="password" name="password" type="password" autocomplete="new-password" required minlength="10">
      <div id="form-status"></div>
      <p><button type="submit">Create account</button></p>
      <p>Already have an account? <a href="/account/sign-in">Sign in</a></p>
    </form>`);
  const form = document.getElementById('register');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v)]));
    body.email = body.email.trim();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await api('POST', '/api/auth/register', { body, auth: false });
      const { merged } = await signIn(body.email, body.password);
      flashNext('success', 'Welcome! Your account is ready. We emailed you a link to confirm your address.' + (merged && merged.merged ? ' ' + mergedText(merged) : ''));
      navigate(merged && merged.merged ? '/cart' : nextPath());
    } catch (e) {
      show(document.getElementById('form-status'), 'error', errorText(e));
      button.disabled = false;
    }
  });
}

async function verifyEmailPage() {
  setTitle('Confirm your email');
  const token = new URLSearchParams(location.search).get('token');
  if (!token) { render(html`<h1>Confirm your email</h1>${notice('error', 'This link is incomplete. Use the link from the email exactly.')}`); return; }
  try {
    // Signed in, the session goes along: it shows the account's own
    // password holder confirms (what the admin_emails rule needs).
    await api('POST', '/api/auth/verify-email', { body: { token } });
    render(html`<h1>Email confirmed</h1>${notice('success', 'Thank you: your email address is confirmed.')}<p><a href="/">Continue shopping</a></p>`);
    // Checkout reads the proof from the access token: get one that has it.
    if (currentUser()) { await refreshSession(); await refreshProfile(); }
  } catch (e) {
    render(html`<h1>Confirm your email</h1>${notice('error', e.code === 'invalid_or_expired_token' ? 'This link has expired or was already used. Sign in and ask for a new one from your account page.' : errorText(e))}`);
  }
}

async function forgotPasswordPage() {
  setTitle('Reset your password');
  render(html`<h1>Reset your password</h1>
    <form class="narrow box" id="forgot">
      <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="email" required>
      <div id="form-status"></div>
      <p><button type="submit">Email me a reset link</button></p>
    </form>`);
  const form = document.getElementById('forgot');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const status = document.getElementById('form-status');
    try {
      await api('POST', '/api/auth/password-reset', { body: { email: String(new FormData(form).get('email')).trim() }, auth: false });
      show(status, 'success', 'If an account uses this address, we have emailed it a link to set a new password.');
    } catch (e) { show(status, 'error', errorText(e)); }
  });
}

async function resetPasswordPage() {
  setTitle('Choose a new password');
  const token = new URLSearchParams(location.search).get('token');
  if (!token) { render(html`<h1>Choose a new password</h1>${notice('error', 'This link is incomplete. Use the link from the email exactly.')}`); return; }
  render(html`<h1>Choose a new password</h1>
    <form class="narrow box" id="reset">
      <label for="new_password">New password (at least 10 characters)</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="10">
      <div id="form-status"></div>
      <p><button type="submit">Set password</button></p>
    </form>`);
  const form = document.getElementById('reset');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const status = document.getElementById('form-status');
    try {
      await api('POST', '/api/auth/password-reset/confirm', { body: { token, new_password: String(new FormData(form).get('new_password')) }, auth: false });
      // The reset ended every session, this browser's too.
      if (currentUser()) signOutLocally('signed_out');
      flashNext('success', 'Your password is changed. Sign in with it now.');
      navigate('/account/sign-in');
    } catch (e) {
      show(status, 'error', e.code === 'invalid_or_expired_token' ? 'This link has expired or was already used. Ask for a new one.' : errorText(e));
    }
  });
}

async function refreshProfile() {
  const { user } = await api('GET', '/api/users/profile');
  rememberUser(user);
  return user;
}

/** The hidden form that edits one address book entry in place. */
function addressEditForm(a) {
  const id = (k) => `edit-${a.id}-${k}`;
  return html`<form id="edit-${a.id}" class="address-edit" hidden>
    <label for="${id('label')}">Label (optional, e.g. Home)</label><input id="${id('label')}" name="label" value="${a.label || ''}">
    ${addressFields(id, a)}
    <div class="form-status"></div>
    <p><button type="submit">Save address</button> <button type="button" class="secondary" data-cancel>Cancel</button></p>
  </form>`;
}

async function accountPage(isCurrent) {
  if (!requireUser()) return;
  const [user, book] = await Promise.all([refreshProfile(), api('GET', '/api/users/addresses').catch(() => ({ addresses: [] }))]);
  if (!isCurrent()) return;
  setTitle('Your account');
  render(html`
    ${takeFlash()}
    <h1>Your account</h1>
    <p>Signed in as <strong>${user.email}</strong> ${user.email_verified ? html`<span class="badge ok">confirmed</span>` : html`<span class="badge warn">not confirmed</span> <button type="button" class="secondary" id="resend">Send the confirmation link again</button>`}</p>
    <div id="resend-status"></div>
    <p><a href="/account/orders">Your orders</a>${user.role === 'admin' ? html` · <a href="/admin">Admin console</a>` : ''}</p>
    <div class="two-col">
      <form class="box" id="profile">
        <h2>Profile</h2>
        <label for="first_name">First name</label><input id="first_name" name="first_name" autocomplete="given-name" value="${user.first_name}">
        <label for="last_name">Last name</label><input id="last_name" name="last_name" autocomplete="family-name" value="${user.last_name}">
        <div id="profile-status"></div>
        <p><button type="submit">Save</button></p>
      </form>
      <form class="box" id="password-form">
        <h2>Change password</h2>
        <label for="current_password">Current password</label><input id="current_password" name="current_password" type="password" autocomplete="current-password" required>
        <label for="new_password">New password</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="10">
        <div id="password-status"></div>
        <p><button type="submit">Change password</button></p>
      </form>
    </div>
    <section class="box" id="address-book" aria-labelledby="address-book-title">
      <h2 id="address-book-title">Address book</h2>
      ${book.addresses.length ? html`<ul>${book.addresses.map((a) => html`<li data-address="${a.id}">${a.label ? html`<strong>${a.label}</strong>: ` : ''}${addressLine(a)}
        ${a.default_shipping ? html` <span class="badge ok">default</span>` : html` <button type="button" class="secondary" data-default="${a.id}">Make default<span class="visually-hidden"> for ${addressLine(a)}</span></button>`}
        <button type="button" class="secondary" data-edit-address="${a.id}" aria-expanded="false" aria-controls="edit-${a.id}">Edit<span class="visually-hidden"> ${addressLine(a)}</span></button>
        <button type="button" class="danger" data-delete-address="${a.id}">Delete<span class="visually-hidden"> ${addressLine(a)}</span></button>
        ${addressEditForm(a)}</li>`)}</ul>`
        : html`<p class="muted">No saved addresses yet. Checkout can save the address you ship to.</p>`}
      <div id="address-status"></div>
    </section>
    <section class="box" id="your-data" aria-labelledby="your-data-title">
      <h2 id="your-data-title">Your data</h2>
      <p>Everything the shop holds about you (profile, addresses, sessions, cart, orders, emails), as one JSON file.</p>
      <p><button type="button" class="secondary" id="export-data">Download my data</button></p>
      <div id="export-status"></div>
      <form id="delete-account">
        <h3>Delete your account</h3>
        <p>Your orders stay on record for accounting under an anonymous id, without your name or addresses; your profile, address book, cart and sessions are erased. This cannot be undone. Orders still in progress must be delivered or cancelled first.</p>
        <label for="delete-password">Your password</label><input id="delete-password" name="password" type="password" autocomplete="current-password" required>
        <div id="delete-status"></div>
        <p><button type="submit" class="danger">Delete my account</button></p>
      </form>
    </section>
    <p><button type="button" class="secondary" id="sign-out">Sign out</button></p>
  `);
  const addressStatus = (e) => { show(document.getElementById('address-status'), 'error', errorText(e)); };
  for (const b of app.querySelectorAll('button[data-default]')) {
    b.addEventListener('click', async () => {
      const a = book.addresses.find((x) => x.id === b.dataset.default);
      const body = { label: a.label, name: a.name, line1: a.line1, line2: a.line2 || null, city: a.city, region: a.region || null, postal_code: a.postal_code, country: a.country, default_shipping: true };
      try { await api('PUT', `/api/users/addresses/${a.id}`, { body }); flashNext('success', `${addressLine(a)} is now your default address.`); route(); } catch (e) { addressStatus(e); }
    });
  }
  for (const b of app.querySelectorAll('button[data-edit-address]')) {
    const form = document.getElementById(`edit-${b.dataset.editAddress}`);
    b.addEventListener('click', () => {
      form.hidden = !form.hidden;
      b.setAttribute('aria-expanded', String(!form.hidden));
      if (!form.hidden) form.elements.name.focus();
    });
    form.querySelector('button[data-cancel]').addEventListener('click', () => { form.hidden = true; b.setAttribute('aria-expanded', 'false'); b.focus(); });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      // The whole entry is replaced (a field left out is cleared); leaving
      // default_shipping out keeps it.
      const label = String(form.elements.label.value).trim();
      const body = label ? { ...addressFrom(form), label } : addressFrom(form);
      try {
        await api('PUT', `/api/users/addresses/${b.dataset.editAddress}`, { body });
        flashNext('success', 'Address saved.');
        route();
      } catch (e) { show(form.querySelector('.form-status'), 'error', errorText(e)); }
    });
  }
  for (const b of app.querySelectorAll('button[data-delete-address]')) {
    b.addEventListener('click', async () => {
      try { await api('DELETE', `/api/users/addresses/${b.dataset.deleteAddress}`); flashNext('success', 'Address deleted.'); route(); } catch (e) { addressStatus(e); }
    });
  }
  const formHandler = (id, statusId, send, done) => {
    const form = document.getElementById(id);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const status = document.getElementById(statusId);
      try { await send(Object.fromEntries(new FormData(form))); show(status, 'success', done); } catch (e) { show(status, 'error', errorText(e)); }
    });
  };
  formHandler('profile', 'profile-status', async (b) => rememberUser((await api('PUT', '/api/users/profile', { body: { first_name: b.first_name, last_name: b.last_name } })).user), 'Saved.');
  formHandler('password-form', 'password-status', (b) => api('PUT', '/api/users/password', { body: b }), 'Your password is changed. Other devices were signed out.');
  document.getElementById('sign-out').addEventListener('click', async () => { await signOut(); flashNext('success', 'You are signed out.'); navigate('/'); });
  document.getElementById('export-data').addEventListener('click', async () => {
    const status = document.getElementById('export-status');
    try {
      const data = await api('GET', '/api/users/me/export');
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
      link.download = `shop-data-${new Date().toISOString().slice(0, 10)}.json`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      show(status, 'success', 'Your data is downloaded.');
    } catch (e) { show(status, 'error', errorText(e)); }
  });
  document.getElementById('delete-account').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const status = document.getElementById('delete-status');
    try {
      await api('DELETE', '/api/users/me', { body: { password: ev.target.elements.password.value } });
      signOutLocally('account_deleted');
      flashNext('success', 'Your account is deleted, and you are signed out.');
      navigate('/');
    } catch (e) { show(status, 'error', errorText(e)); }
  });
  const resend = document.getElementById('resend');
  if (resend) resend.addEventListener('click', async () => {
    const status = document.getElementById('resend-status');
    try { await api('POST', '/api/auth/verify-email/resend'); show(status, 'success', 'We sent you a new link.'); } catch (e) { show(status, 'error', errorText(e)); }
  });
}

// ------------------------------------------------------------------ orders

async function ordersPage(isCurrent) {
  if (!requireUser()) return;
  const page = Math.max(1, Number(new URLSearchParams(location.search).get('page')) || 1);
  const result = await api('GET', `/api/orders?limit=20&page=${page}`);
  if (!isCurrent()) return;
  setTitle('Your orders');
  const pages = Math.max(1, Math.ceil(result.total / 20));
  render(html`
    <h1>Your orders</h1>
    ${result.orders.length ? html`<div class="table-wrap" tabindex="0"><table id="orders">
      <caption class="visually-hidden">Your orders, newest first</caption>
      <thead><tr><th scope="col">Order</th><th scope="col">Placed</th><th scope="col">Status</th><th scope="col" class="num">Total</th></tr></thead>
      <tbody>${result.orders.map((o) => html`<tr data-order-id="${o.id}"><td><a href="/account/orders/${o.id}">#${o.id.slice(0, 8)}</a></td><td>${formatDate(o.created_at)}</td>
        <td><span class="badge status-${o.status}">${statusText(o.status)}</span></td><td class="num">${formatMoney(o.total)}</td></tr>`)}</tbody>
    </table></div>` : html`<p>You have no orders yet. <a href="/">Start shopping</a></p>`}
    ${pages > 1 ? html`<nav class="pager" aria-label="Pages">${page > 1 ? html`<a href="/account/orders?page=${page - 1}">Previous</a>` : ''}<span>Page ${page} of ${pages}</span>${page < pages ? html`<a href="/account/orders?page=${page + 1}">Next</a>` : ''}</nav>` : ''}
  `);
}

async function orderPage(id, isCurrent) {
  if (!requireUser()) return;
  const [order, history] = await Promise.all([api('GET', `/api/orders/${encodeURIComponent(id)}`), api('GET', `/api/orders/${encodeURIComponent(id)}/history`)]);
  if (!isCurrent()) return;
  setTitle(`Order #${order.id.slice(0, 8)}`);
  const cancellable = ['pending_payment', 'paid', 'processing'].includes(order.status);
  const a = order.shipping_address;
  render(html`
    ${takeFlash()}
    <h1>Order #${order.id.slice(0, 8)}</h1>
    <p>Status: <span class="badge status-${order.status}" id="order-status">${statusText(order.status)}</span> · placed ${formatDate(order.created_at)}</p>
    ${order.tracking ? html`<p id="tracking">Shipped with <strong>${order.tracking.carrier}</strong>, tracking number <strong>${order.tracking.number}</strong></p>` : ''}
    ${orderSummary(order)}
    ${a ? html`<h2>Shipping to</h2><address>${a.name}<br>${a.line1}${a.line2 ? html`<br>${a.line2}` : ''}<br>${a.postal_code} ${a.city}${a.region ? `, ${a.region}` : ''}<br>${a.country}</address>` : ''}
    <h2>History</h2>
    <ol class="timeline" id="timeline">${history.history.map((h) => html`<li><strong>${statusText(h.to)}</strong> <span class="muted">${formatDate(h.at)}</span>${h.reason ? html`<br><span class="muted">${h.reason}</span>` : ''}</li>`)}</ol>
    <div id="order-actions-status"></div>
    <p>
      ${order.status === 'pending_payment' ? html`<button type="button" id="pay-now">Pay now</button> ` : ''}
      ${cancellable ? html`<button type="button" class="danger" id="cancel-order">Cancel order</button>` : ''}
    </p>
    ${['paid', 'processing', 'shipped', 'delivered', 'refunded', 'partially_refunded'].includes(order.status) || (order.status === 'cancelled' && order.refunded.amount_minor > 0) ? html`<p><a href="/account/orders/${order.id}/invoice" id="invoice-link">Invoice</a></p>` : ''}
    <p><a href="/account/orders">← All orders</a></p>
  `);
  const status = document.getElementById('order-actions-status');
  const pay = document.getElementById('pay-now');
  // Enabled again when the payment page could not be started (its message
  // says to try again).
  if (pay) pay.addEventListener('click', async () => { pay.disabled = true; await payOrder(order.id, status); pay.disabled = false; });
  const cancel = document.getElementById('cancel-order');
  if (cancel) cancel.addEventListener('click', async () => {
    if (!confirm(order.status === 'pending_payment' ? 'Cancel this order?' : 'Cancel this order? You will be refunded in full.')) return;
    cancel.disabled = true;
    try {
      await api('POST', `/api/orders/${order.id}/cancel`);
      flashNext('success', 'Your order is cancelled.');
      route();
    } catch (e) {
      // The order was cancelled but its refund could not be made yet: the
      // page must show the cancellation, and say the money follows.
      if (e.code === 'refund_failed' || e.code === 'refund_in_progress') {
        flashNext('warn', e.code === 'refund_failed'
          ? 'Your order is cancelled. The refund could not be sent yet; the shop has been told and will send it.'
          : 'Your order is cancelled. Its refund is being sent.');
        route();
        return;
      }
      show(status, 'error', e.code === 'payments_not_configured' ? 'The shop cannot reach its payment provider right now, so it cannot refund this order yet. Please try again later.' : errorText(e));
      cancel.disabled = false;
    }
  });
}

/** The order's invoice and credit notes, printable (the paid email links here). */
async function invoicePage(id, isCurrent) {
  if (!requireUser()) return;
  let result;
  try { result = await api('GET', `/api/orders/${encodeURIComponent(id)}/invoice`); } catch (e) {
    if (!isCurrent()) return;
    setTitle('Invoice');
    render(html`<h1>Invoice</h1>${notice('error', errorText(e))}<p><a href="/account/orders/${id}">← The order</a></p>`);
    return;
  }
  if (!isCurrent()) return;
  const inv = result.invoice;
  const d = inv.document;
  setTitle(`Invoice ${inv.number}`);
  const b = d.buyer.billing_address;
  const rate = (d.tax.rate_bps / 100).toFixed(2);
  render(html`
    <article class="invoice" id="invoice">
      <h1>Invoice ${inv.number}</h1>
      <p>Issued ${formatDate(inv.issued_at)} · Order #${inv.order_id.slice(0, 8)}</p>
      <div class="two-col">
        <div><h2>From</h2><p>${d.seller.name}${d.seller.address.map((l) => html`<br>${l}`)}${d.seller.tax_id ? html`<br>Tax id: ${d.seller.tax_id}` : ''}${d.seller.email ? html`<br>${d.seller.email}` : ''}</p></div>
        <div><h2>Bill to</h2>${b ? html`<address>${b.name}<br>${b.line1}${b.line2 ? html`<br>${b.line2}` : ''}<br>${b.postal_code} ${b.city}${b.region ? `, ${b.region}` : ''}<br>${b.country}</address>` : html`<p class="muted">No address on the order.</p>`}</div>
      </div>
      <div class="table-wrap" tabindex="0"><table><caption class="visually-hidden">Invoice lines</caption>
        <thead><tr><th scope="col">Item</th><th scope="col" class="num">Qty</th><th scope="col" class="num">Unit price</th><th scope="col" class="num">Total</th></tr></thead>
        <tbody>${d.lines.map((l) => html`<tr><td>${l.name} <span class="muted">${l.sku}</span></td><td class="num">${l.quantity}</td><td class="num">${formatMoney(l.unit_price)}</td><td class="num">${formatMoney(l.line_total)}</td></tr>`)}</tbody>
        <tfoot><tr><th scope="row" colspan="3">Net</th><td class="num">${formatMoney(d.net)}</td></tr>
        <tr><th scope="row" colspan="3">${d.tax.label} (${rate} %, included)</th><td class="num">${formatMoney(d.tax_amount)}</td></tr>
        <tr><th scope="row" colspan="3">Total</th><td class="num"><strong>${formatMoney(d.total)}</strong></td></tr></tfoot></table></div>
      ${result.credit_notes.length ? html`<h2>Credit notes</h2><ul id="credit-notes">${result.credit_notes.map((n) => html`<li>${n.number} · ${formatDate(n.issued_at)} · ${formatMoney(n.total)} credited</li>`)}</ul>` : ''}
    </article>
    <p><button type="button" id="print-invoice">Print</button> <a href="/account/orders/${inv.order_id}">← The order</a></p>
  `);
  document.getElementById('print-invoice').addEventListener('click', () => window.print());
}

// ------------------------------------------------------------------ start

// Started: the "could not load" message of index.html is not for this page.
document.getElementById('load-failed')?.remove();
updateHeader();
refreshCartCount();
route();
