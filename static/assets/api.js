// The shop's API as the storefront and the admin console use it: one place
// that keeps the session (access and rotating refresh token), the guest
// cart token, and turns the error envelope into an ApiError.
//
// - Every request carries `Authorization: Bearer <access token>` when signed
//   in. An access token about to expire is refreshed first, and a 401 on a
//   request that carried one is refreshed and retried once, so an expired
//   token never shows. Concurrent requests share one refresh, and so do
//   the shop's tabs (a Web Lock, then the stored token read again): the
//   refresh token is single-use, and two refreshes with it would revoke
//   the session in every tab.
// - A refresh answered 401 (`refresh_token_reused`, `invalid_refresh_token`)
//   signs the user out cleanly and tells the page why.
// - Guests carry `X-Cart-Token`; the token the API hands back is kept.

const KEYS = { access: 'shop.accessToken', refresh: 'shop.refreshToken', user: 'shop.user', cart: 'shop.cartToken', skew: 'shop.clockSkew', signOuts: 'shop.signOuts' };
const listeners = new Set();

/**
 * An answer that was not 2xx, read from the envelope `{"error": {...}}`.
 * `retryAfter`: the seconds its `Retry-After` header asks to wait (429,
 * 503, a busy cart), or null when it has none.
 */
export class ApiError extends Error {
  constructor(status, code, message, details, requestId, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }
}

/**
 * A `Retry-After` value as seconds from `nowMs`: delay-seconds ("30") or an
 * HTTP date (a date passed is 0). Null when absent or unreadable.
 */
export function retryAfterSeconds(value, nowMs) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = /[a-z]/i.test(text) ? Date.parse(text) : NaN;
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - nowMs) / 1000)) : null;
}

/** Who is signed in (the user object from sign-in), or null. */
export function currentUser() {
  try { return JSON.parse(localStorage.getItem(KEYS.user) || 'null'); } catch { return null; }
}

export function cartToken() { return localStorage.getItem(KEYS.cart); }
export function forgetCartToken() { localStorage.removeItem(KEYS.cart); }

/** Be told when the session changes: `fn(user, reason)`. */
export function onSessionChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function announce(reason) { const user = currentUser(); for (const fn of listeners) fn(user, reason); }

// Another tab signed in or out (they share localStorage): this one follows,
// so a tab signed out elsewhere stops showing the account's pages, and no
// tab goes on with another account's token (found in review). A token
// rotation elsewhere changes only the tokens: same session, nothing to do.
// (No window when the module is loaded by the unit tests in Node.)
if (typeof window !== 'undefined') window.addEventListener('storage', (ev) => {
  if (ev.key !== KEYS.user && ev.key !== null) return;
  const parse = (v) => { try { return JSON.parse(v || 'null'); } catch { return null; } };
  const [before, after] = ev.key === null ? [undefined, currentUser()] : [parse(ev.oldValue), parse(ev.newValue)];
  if (before && after && before.id === after.id) return announce('profile');
  announce(after ? 'signed_in_elsewhere' : 'signed_out_elsewhere');
});

function keepTokens(pair, user) {
  localStorage.setItem(KEYS.access, pair.accessToken);
  localStorage.setItem(KEYS.skew, String(clockSkew(pair.accessToken, Date.now() / 1000)));
  localStorage.setItem(KEYS.refresh, pair.refreshToken);
  if (user) localStorage.setItem(KEYS.user, JSON.stringify(user));
}

/**
 * Forget the session in this browser (no request), and what the last
 * shopper left on the device: a guest cart token a failed merge kept, the
 * prices they saw, their checkout keys.
 */
export function signOutLocally(reason) {
  for (const key of [KEYS.access, KEYS.refresh, KEYS.user, KEYS.cart, KEYS.skew, 'shop.seenPrices']) localStorage.removeItem(key);
  // Counted, so an answer still on its way (a guest cart's token) is not
  // kept for whoever uses the device next.
  localStorage.setItem(KEYS.signOuts, String((Number(localStorage.getItem(KEYS.signOuts)) || 0) + 1));
  for (const key of Object.keys(sessionStorage)) if (key.startsWith('shop.checkoutKey.') || key.startsWith('shop.refund.')) sessionStorage.removeItem(key);
  announce(reason || 'signed_out');
}

/** A JWT's claims, or null when unreadable. */
function claims(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  } catch { return null; }
}

/**
 * How far the server's clock is ahead of this device's (seconds), from a
 * token just received: its `iat` is the server's now. 0 when unreadable.
 */
export function clockSkew(token, deviceNow) {
  const c = claims(token);
  return c && Number.isFinite(c.iat) ? c.iat - deviceNow : 0;
}

/**
 * Seconds until the access token's `exp` by the server's clock (the
 * device's plus `skew`), or -Infinity when unreadable. Without the skew a
 * device clock running minutes ahead would see every token as expiring
 * and refresh before each request.
 */
export function secondsLeft(token, deviceNow, skew) {
  const c = claims(token);
  return c && Number.isFinite(c.exp) ? c.exp - (deviceNow + skew) : -Infinity;
}

let refreshing = null;
let fetchCache = 'default';

/**
 * How `fetch` may use the browser's HTTP cache. The storefront keeps the
 * default (catalog reads are cacheable for a short while, as the API says);
 * the admin console uses `no-cache` so it always revalidates (ETag) and
 * shows its own changes at once.
 */
export function useHttpCache(mode) { fetchCache = mode; }

/**
 * Exchange the refresh token for a new pair, once at a time in this tab and,
 * where the browser has Web Locks, across the shop's tabs. A tab that waited
 * for another's refresh finds a new token stored and uses it instead of
 * spending the old one again. True when a fresh pair is stored.
 */
export function refreshSession() {
  if (!refreshing) {
    const spent = localStorage.getItem(KEYS.refresh);
    const once = () => refreshOnce(spent);
    refreshing = (navigator.locks ? navigator.locks.request('shop.refresh', once) : once()).finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** One refresh, unless another tab made one since `spent` was read. */
async function refreshOnce(spent) {
  const refreshToken = localStorage.getItem(KEYS.refresh);
  if (!refreshToken) return false;
  if (refreshToken !== spent) return true;
  let r;
  try {
    r = await fetch('/api/auth/refresh', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }) });
  } catch { return false; }
  if (r.ok) {
    const pair = await r.json();
    // Signed out (or in as someone else) while this refresh was on its way:
    // the answer belongs to a session this browser has left, and storing
    // it would sign the next person on the device in as the last one.
    if (localStorage.getItem(KEYS.refresh) !== refreshToken) return false;
    keepTokens(pair);
    return true;
  }
  // Refused: the session ended, unless another tab (one without Web Locks)
  // rotated the token meanwhile, which is then the one to use.
  const now = localStorage.getItem(KEYS.refresh);
  if (now && now !== refreshToken) return true;
  if (r.status === 401) signOutLocally('session_ended');
  return false;
}

/**
 * One API call. `body` is sent as JSON. Options: `cart` (send the guest
 * cart token), `headers`, `auth` (default true: send the access token).
 * Resolves to the parsed JSON (or null for 204); rejects with ApiError.
 */
export async function api(method, path, { body, cart = false, headers = {}, auth = true, retried = false, queued = false, rejoined = false, asUser = null } = {}) {
  let access = auth ? localStorage.getItem(KEYS.access) : null;
  if (access && secondsLeft(access, Date.now() / 1000, Number(localStorage.getItem(KEYS.skew)) || 0) < 20 && !retried) {
    await refreshSession();
    access = localStorage.getItem(KEYS.access);
  }
  // A step of a flow begun as one account (`asUser`: its id) is not sent as
  // another that signed in meanwhile in another tab (found in review: a
  // checkout's retry placed the other account's cart with this address).
  if (asUser && (!access || (claims(access) || {}).sub !== asUser)) {
    throw new ApiError(401, 'account_changed', 'You were signed out, or signed in as someone else, in another tab. Nothing was sent.');
  }
  // A guest's cart changes go one at a time across the shop's tabs (Web
  // Locks), each reading the cart token when its turn comes: the first
  // change makes the guest cart, and a change in another tab at the same
  // moment waits for its token instead of making a second cart (found in
  // review: two tabs adding at once made two carts, and the token of the
  // last answer won, losing the other tab's line).
  if (cart && !access && method !== 'GET' && !queued && navigator.locks) {
    return navigator.locks.request('shop.guestCart', () => api(method, path, { body, cart, headers, auth, retried, queued: true, rejoined }));
  }
  const h = { accept: 'application/json', ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (access) h.authorization = `Bearer ${access}`;
  const guestToken = cartToken();
  if (cart && guestToken) h['x-cart-token'] = guestToken;
  const signOutsBefore = localStorage.getItem(KEYS.signOuts);
  let r;
  try {
    r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), cache: fetchCache });
  } catch {
    throw new ApiError(0, 'network_error', 'We could not reach the shop. Check your connection and try again.');
  }
  // A token comes with a guest cart made for a request sent as a guest.
  // Kept even if another tab signed in meanwhile: the cart it names (an add
  // that raced that sign-in's merge) is merged by the next signed-in cart
  // request, which sends it; once one succeeds the token has been merged.
  // Not kept after a sign-out meanwhile: the next shopper is someone else.
  const newCartToken = r.headers.get('x-cart-token');
  // Without Web Locks (a page served over plain http from another host),
  // two tabs can still each make a cart: the first token stored wins, and
  // a change answered with a newer one is made again in the winner's cart
  // (once; the cart it made is left to expire).
  const stored = cartToken();
  if (newCartToken && cart && !access && r.ok && method !== 'GET' && !rejoined && stored && stored !== guestToken && stored !== newCartToken
    && localStorage.getItem(KEYS.signOuts) === signOutsBefore) {
    return api(method, path, { body, cart, headers, auth, retried, queued, rejoined: true });
  }
  if (newCartToken && cart && !access && localStorage.getItem(KEYS.signOuts) === signOutsBefore) localStorage.setItem(KEYS.cart, newCartToken);
  else if (cart && access && guestToken && r.ok && cartToken() === guestToken) forgetCartToken();
  if (r.status === 401 && access && !retried) {
    // Again only as the account that sent it: after a sign-out and another
    // account's sign-in in another tab, the stored session is someone
    // else's (found in review: an order would have been placed from their
    // cart with this request's address).
    const same = () => { const now = localStorage.getItem(KEYS.access); return now && (claims(now) || {}).sub === (claims(access) || {}).sub; };
    if (await refreshSession() && same()) return api(method, path, { body, cart, headers, auth, retried: true });
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(r.status, e.code || 'http_' + r.status, e.message || r.statusText, e.details, e.request_id || r.headers.get('x-request-id'), retryAfterSeconds(r.headers.get('retry-after'), Date.now()));
  }
  return data;
}

/**
 * Sign in, then merge the guest cart into the user's cart (a signed-in
 * `GET /api/cart` that still carries `X-Cart-Token`). Resolves to
 * `{ user, merged }`, where `merged` is the API's `merged_guest_cart` or null.
 */
export async function signIn(email, password) {
  // A session already here (signed in again without signing out) is ended
  // at the API, so its refresh token does not stay valid unseen.
  const previous = localStorage.getItem(KEYS.refresh);
  const pair = await api('POST', '/api/auth/login', { body: { email, password }, auth: false });
  if (previous) api('POST', '/api/auth/logout', { body: { refreshToken: previous }, auth: false }).catch(() => {});
  keepTokens(pair, pair.user);
  let merged = null;
  if (cartToken()) {
    try {
      // `api` forgets the token it sent once merged; one stored meanwhile
      // (an add in another tab that raced this merge) is kept for the next
      // signed-in cart request to merge (found in review: it was dropped).
      const cart = await api('GET', '/api/cart', { cart: true });
      merged = cart.merged_guest_cart || null;
    } catch { /* the cart page will show the problem */ }
  }
  announce('signed_in');
  return { user: pair.user, merged };
}

/** End the session at the API (so its refresh tokens stop working) and here. */
export async function signOut() {
  const refreshToken = localStorage.getItem(KEYS.refresh);
  if (refreshToken) {
    try { await api('POST', '/api/auth/logout', { body: { refreshToken }, auth: false }); } catch { /* signed out here anyway */ }
  }
  signOutLocally('signed_out');
}

/**
 * Keep a changed user (profile edit) for the header: only while that user
 * is still the one signed in here (found in review: a profile answer that
 * came after a sign-out, or another account's sign-in in another tab, put
 * that user back on the device).
 */
export function rememberUser(user) {
  const now = currentUser();
  if (!localStorage.getItem(KEYS.refresh) || !user || (now && now.id !== user.id)) return;
  localStorage.setItem(KEYS.user, JSON.stringify(user));
  announce('profile');
}

/** A fresh Idempotency-Key. */
export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}
