// Shown to people: money, dates, order statuses and API errors in words a
// shopper understands. Money stays an integer of minor units everywhere;
// only the text shown is a decimal.

// The minor-unit exponent of every currency the API accepts, as the API
// has it (components/shared/money: ISO 4217, as Stripe counts minor
// units): 2 unless listed here. Not from Intl, whose digits are the ones
// people write and differ by browser (Chrome shows HUF and IDR with none),
// which would make amounts 100 times off. tests/browser/unit.test.mjs
// checks this list against the API's table.
const ZERO_DECIMALS = ['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'];
const THREE_DECIMALS = ['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND'];

/** The currency's minor-unit exponent (USD 2, JPY 0, BHD 3), as the API counts it. */
export function minorExponent(currency) {
  if (ZERO_DECIMALS.includes(currency)) return 0;
  if (THREE_DECIMALS.includes(currency)) return 3;
  return 2;
}

/** Integer minor units as an exact decimal string (1999, 2 → "19.99"). */
export function minorToDecimal(amountMinor, exponent) {
  const negative = amountMinor < 0;
  let digits = String(Math.abs(Math.trunc(amountMinor)));
  if (exponent === 0) return (negative ? '-' : '') + digits;
  digits = digits.padStart(exponent + 1, '0');
  return (negative ? '-' : '') + digits.slice(0, -exponent) + '.' + digits.slice(-exponent);
}

/**
 * A decimal the user typed ("19.9") as integer minor units (1990), or null
 * when it is not a plain non-negative amount with at most `exponent` decimals.
 */
export function decimalToMinor(text, exponent) {
  const m = String(text).trim().match(/^(\d{1,12})(?:([.,])(\d*))?$/);
  if (!m) return null;
  const [, whole, separator, frac = ''] = m;
  // A comma is a decimal separator ("12,50"), but a comma before exactly
  // three digits may be a thousands separator ("1,000"): refused rather
  // than guessed, since a three-decimal currency would read it as 1.000.
  if (separator === ',' && frac.length === 3) return null;
  if (frac.length > exponent) return null;
  return Number(whole + frac.padEnd(exponent, '0'));
}

/** `{amount_minor, currency}` as the browser's locale writes it ("$19.99"). */
export function formatMoney(money) {
  if (!money) return '';
  const exponent = minorExponent(money.currency);
  // Intl formats a decimal string exactly: no float arithmetic on money.
  // Every minor digit is shown, even where people usually write fewer
  // (HUF), so the amount shown is the amount charged.
  return new Intl.NumberFormat(undefined, { style: 'currency', currency: money.currency, minimumFractionDigits: exponent, maximumFractionDigits: exponent })
    .format(minorToDecimal(money.amount_minor, exponent));
}

export function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export const STATUS_TEXT = {
  pending_payment: 'Awaiting payment', paid: 'Paid', processing: 'Being prepared', shipped: 'Shipped', delivered: 'Delivered',
  cancelled: 'Cancelled', expired: 'Expired (not paid in time)', refunded: 'Refunded', partially_refunded: 'Partly refunded',
};

export function statusText(status) { return STATUS_TEXT[status] || status; }

/** Statuses of an order whose money was taken and not (wholly) given back. */
export const PAID_STATUSES = ['paid', 'processing', 'shipped', 'delivered', 'partially_refunded'];

export const LINE_STATUS_TEXT = {
  ok: '', out_of_stock: 'Out of stock', insufficient_stock: 'Not enough in stock', inactive: 'No longer sold',
  unavailable: 'No longer available', currency_changed: 'Now priced in another currency',
};

const FIELD_NAMES = { first_name: 'First name', last_name: 'Last name', new_password: 'New password', current_password: 'Current password', postal_code: 'Postal code', line1: 'Address', name: 'Name', amount_minor: 'Price', stock_on_hand: 'Stock on hand' };

/**
 * When to try again, from the answer's `Retry-After` (seconds, as api.js
 * reads it): "Try again in 30 seconds.", "... in 5 minutes.", or null.
 */
export function retryText(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return null;
  const s = Math.max(1, Math.ceil(seconds));
  const [n, unit] = s < 60 ? [s, 'second'] : s < 3600 ? [Math.ceil(s / 60), 'minute'] : [Math.ceil(s / 3600), 'hour'];
  return `Try again in ${n} ${unit}${n === 1 ? '' : 's'}.`;
}

/**
 * A field's problem as the API words it, with amounts in minor units
 * ("amount_minor must be a whole number from 0 to 100000000000") written
 * as money when the currency is known ("must be from $0.00 to ...").
 */
function fieldProblem(field, problem, currency) {
  const text = Array.isArray(problem) ? problem.join(', ') : String(problem);
  const range = field === 'amount_minor' && /from (\d+) to (\d+)/.exec(text);
  const [low, high] = range ? [moneyOrNull(Number(range[1]), currency), moneyOrNull(Number(range[2]), currency)] : [];
  return low && high ? `must be from ${low} to ${high}` : text;
}

/** formatMoney, or null without a currency Intl knows (one being typed). */
function moneyOrNull(amountMinor, currency) {
  if (!currency || !Number.isFinite(amountMinor)) return null;
  try { return formatMoney({ amount_minor: amountMinor, currency }); } catch { return null; }
}

/**
 * The error envelope in plain words. `context` tells what the request was
 * about, so amounts can be written as money: `currency` (the order's, the
 * product form's) and `amount` (minor units asked for, e.g. a refund).
 * An answer with `Retry-After` (`e.retryAfter`, seconds) says when to try
 * again. The API's own `message` is shown only for codes not known here.
 */
export function errorText(e, context = {}) {
  if (!e || !e.code) return 'Something went wrong. Please try again.';
  const d = e.details || {};
  const when = retryText(e.retryAfter);
  const later = (fallback) => when || fallback;
  const money = (amountMinor) => moneyOrNull(amountMinor, context.currency);
  switch (e.code) {
    case 'network_error': case 'account_changed': return e.message;
    case 'invalid_credentials': return 'That email and password do not match an account.';
    case 'too_many_requests': case 'rate_limited': case 'too_many_attempts': return 'Too many attempts. ' + later('Please wait a moment and try again.');
    case 'insufficient_stock':
      if (d.shortages) return 'Some items are no longer in stock in the quantity you asked for. Please review your cart.';
      return d.available === 0 ? 'Sorry, this is out of stock.' : `Sorry, only ${d.available ?? 'a few'} left in stock.`;
    case 'out_of_stock': return 'Sorry, this is out of stock.';
    case 'quantity_limit': return `You can have from 1 to ${d.max ?? 99} of one product in your cart.`;
    case 'cart_full': return 'Your cart is full. Remove a product to add another.';
    case 'currency_mismatch':
      if (d.cart_currency && d.product_currency) return `Your cart is priced in ${d.cart_currency}, and this product in ${d.product_currency}: they cannot be bought together. Check out or empty your cart first.`;
      return 'The products in your cart are no longer priced in one currency. Please review your cart.';
    // With Retry-After: another request held the cart. Without: the change
    // may or may not be stored, and the cart is to be looked at first.
    case 'cart_busy': return when
      ? `Your cart is being changed in another tab or window. ${when}`
      : 'We could not tell whether your change was saved. The cart shows what it holds now: check it before trying again.';
    case 'cart_empty': return 'Your cart is empty.';
    case 'cart_has_issues': return 'Some items in your cart need your attention before checkout.';
    case 'product_unavailable': case 'product_inactive': return 'One of the products is no longer sold. Remove it from your cart to continue.';
    case 'payments_not_configured': return 'Online payment is not set up in this shop yet, so orders cannot be paid here. Your order is saved.';
    case 'payment_provider_unavailable': return 'The payment service is not answering right now. ' + later('Please try again in a moment.');
    case 'payment_provider_error':
      if (d.stripe_status) return `The payment service refused this request${d.stripe_message ? ` (“${d.stripe_message}”)` : ''}.`;
      return 'The payment service is not answering right now. ' + later('Please try again in a moment.');
    case 'amount_not_payable': return 'This order cannot be paid online as it is priced. Please contact the shop.';
    case 'order_not_payable':
      if (['paid', 'processing', 'shipped', 'delivered', 'partially_refunded', 'refunded'].includes(d.current_status)) return 'This order is already paid.';
      return 'This order can no longer be paid (it expired or was cancelled).';
    case 'payment_time_over': return 'The time to pay this order is over. Cancel it, then check out again.';
    case 'nothing_to_pay': return 'This order needed no payment: it is paid.';
    case 'invalid_refund_amount': {
      if (Number.isFinite(d.refundable)) {
        if (d.refundable < 1) return 'Nothing is left to refund on this order.';
        const left = money(d.refundable);
        return left ? `That is more than is left to refund: at most ${left} can be refunded.` : 'That is more than is left to refund.';
      }
      // Stripe takes this currency in coarser steps than its minor unit.
      const asked = money(context.amount);
      if (context.currency && minorExponent(context.currency) === 3) return `Stripe refunds ${context.currency} only in whole hundredths: make the last decimal of ${asked || 'the amount'} a 0.`;
      return asked ? `Stripe cannot refund ${asked}. Try another amount.` : 'Stripe cannot refund this amount. Try another amount.';
    }
    case 'not_refundable': return `This order has nothing to refund${d.current_status ? ` (status: ${statusText(d.current_status)})` : ''}.`;
    case 'no_payment_to_refund': return 'No Stripe payment is recorded for this order, so there is nothing to refund through Stripe.';
    case 'refund_in_progress': return 'A refund of this order is being sent already. ' + later('Please try again in a moment.');
    case 'email_taken': case 'email_already_registered': return 'An account with this email already exists. Sign in instead.';
    case 'email_not_verified': return 'Please confirm your email address first: use the link we emailed you.';
    case 'email_already_verified': return 'Your email address is confirmed already.';
    case 'current_password_incorrect': return 'Your current password is not correct.';
    case 'password_incorrect': return 'That password is not correct.';
    case 'admin_cannot_be_deleted': return 'An admin account cannot be deleted. Another admin must make it a customer account first.';
    case 'cannot_change_own_role': return 'You cannot change your own role. Another admin can.';
    case 'stock_changed': return 'The stock on hand changed since this page was shown (a sale or a restock). It is shown as it is now: check it and set it again.';
    case 'below_reserved': return 'Stock on hand cannot go below the units held for orders in progress (the Reserved column).';
    case 'category_in_use': return 'This category still holds products (active or not). Move them to another category first.';
    case 'slug_taken': return 'Another category already has this slug.';
    case 'sku_taken': return 'Another product already has this SKU.';
    case 'validation_failed': {
      const fields = d.fields || {};
      const parts = Object.entries(fields).map(([k, v]) => {
        const field = k.split('.').pop();
        return `${FIELD_NAMES[field] || field.replace(/_/g, ' ')}: ${fieldProblem(field, v, context.currency)}`;
      });
      return parts.length ? 'Please check: ' + parts.join('; ') + '.' : 'Please check the form.';
    }
    case 'unauthorized': return 'Please sign in again.';
    case 'forbidden': return 'You do not have permission to do that.';
    case 'not_found': return 'We could not find that.';
    case 'invalid_transition': return 'That is not possible for this order any more.';
    case 'request_in_progress': return 'We are still processing your order. One moment…';
  }
  const reference = e.requestId ? ` (Reference: ${e.requestId})` : '';
  if (e.status === 503) return `This part of the shop is not available right now. ${later('Please try again shortly.')}${reference}`;
  if (e.status >= 500) return `Something went wrong on our side. ${later('Please try again shortly.')}${reference}`;
  const text = e.message || 'Something went wrong. Please try again.';
  return when ? `${text} ${when}` : text;
}

/** Escape text for HTML. */
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// Trusted markup is marked with a Symbol only this module holds: no value
// read from JSON (an API answer) can carry it, so none can pass for raw HTML.
const RAW = Symbol('trusted HTML');

function trusted(text) { return Object.freeze({ [RAW]: text }); }

function isRaw(v) { return v !== null && typeof v === 'object' && typeof v[RAW] === 'string'; }

/** A tagged template that escapes every interpolation unless it is `raw(...)` (or another `html`). */
export function html(strings, ...values) {
  let out = '';
  strings.forEach((s, i) => {
    out += s;
    if (i < values.length) {
      const v = values[i];
      if (Array.isArray(v)) out += v.map(markup).join('');
      else out += markup(v);
    }
  });
  return trusted(out);
}

/** Markup written in the code (never data), kept as it is by `html`. */
export function raw(text) { return trusted(String(text)); }

/** The HTML of a value made by `html` or `raw`; anything else as escaped text. */
export function markup(v) { return isRaw(v) ? v[RAW] : esc(v); }

// What an in-page action did (added to the cart, saved, refused) is said
// through the page's one polite live region, #announcer in index.html and
// admin/index.html: it is outside the content that is drawn again, so it is
// there before its words change, as screen readers need. Notices on the
// page are not live regions themselves, so nothing is said twice.
let saying;
/** Say `message` (text, or `html`) to screen-reader users. */
export function say(message) {
  const announcer = typeof document === 'undefined' ? null : document.getElementById('announcer');
  if (!announcer) return;
  const t = document.createElement('template');
  t.innerHTML = markup(message);
  const text = t.content.textContent.replace(/\s+/g, ' ').trim();
  // Emptied, then filled a moment later: the same words twice are said twice.
  announcer.textContent = '';
  clearTimeout(saying);
  saying = setTimeout(() => { announcer.textContent = text; }, 100);
}
