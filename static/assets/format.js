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

const FIELD_NAMES = { first_name: 'First name', last_name: 'Last name', new_password: 'New password', current_password: 'Current password', postal_code: 'Postal code', line1: 'Address', name: 'Name' };

/** The error envelope in plain words. */
export function errorText(e) {
  if (!e || !e.code) return 'Something went wrong. Please try again.';
  const d = e.details || {};
  switch (e.code) {
    case 'network_error': return e.message;
    case 'invalid_credentials': return 'That email and password do not match an account.';
    case 'too_many_requests': case 'rate_limited': case 'too_many_attempts': return 'Too many attempts. Please wait a moment and try again.';
    case 'insufficient_stock':
      if (d.shortages) return 'Some items are no longer in stock in the quantity you asked for. Please review your cart.';
      return d.available === 0 ? 'Sorry, this is out of stock.' : `Sorry, only ${d.available ?? 'a few'} left in stock.`;
    case 'out_of_stock': return 'Sorry, this is out of stock.';
    case 'cart_empty': return 'Your cart is empty.';
    case 'cart_has_issues': return 'Some items in your cart need your attention before checkout.';
    case 'product_unavailable': case 'product_inactive': return 'One of the products is no longer sold. Remove it from your cart to continue.';
    case 'payments_not_configured': return 'Online payment is not set up in this shop yet, so orders cannot be paid here. Your order is saved.';
    case 'payment_provider_unavailable': case 'payment_provider_error': return 'The payment service is not answering right now. Please try again in a moment.';
    case 'order_not_payable': return 'This order can no longer be paid (it expired or was cancelled).';
    case 'email_taken': case 'email_already_registered': return 'An account with this email already exists. Sign in instead.';
    case 'email_not_verified': return 'Please confirm your email address first: use the link we emailed you.';
    case 'current_password_incorrect': return 'Your current password is not correct.';
    case 'validation_failed': {
      const fields = d.fields || {};
      const parts = Object.entries(fields).map(([k, v]) => `${FIELD_NAMES[k.split('.').pop()] || k.split('.').pop().replace(/_/g, ' ')}: ${Array.isArray(v) ? v.join(', ') : v}`);
      return parts.length ? 'Please check: ' + parts.join('; ') + '.' : 'Please check the form.';
    }
    case 'unauthorized': return 'Please sign in again.';
    case 'forbidden': return 'You do not have permission to do that.';
    case 'not_found': return 'We could not find that.';
    case 'invalid_transition': return 'That is not possible for this order any more.';
    case 'request_in_progress': return 'We are still processing your order. One moment…';
  }
  if (e.status >= 500) return `Something went wrong on our side. Please try again shortly.${e.requestId ? ` (Reference: ${e.requestId})` : ''}`;
  return e.message || 'Something went wrong. Please try again.';
}

/** Escape text for HTML. */
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

/** A tagged template that escapes every interpolation unless it is `raw(...)`. */
export function html(strings, ...values) {
  let out = '';
  strings.forEach((s, i) => {
    out += s;
    if (i < values.length) {
      const v = values[i];
      if (isRaw(v)) out += v.__raw;
      else if (Array.isArray(v)) out += v.map((x) => (isRaw(x) ? x.__raw : esc(x))).join('');
      else out += esc(v);
    }
  });
  return { __raw: out };
}

export function raw(text) { return { __raw: text }; }

function isRaw(v) { return v !== null && typeof v === 'object' && typeof v.__raw === 'string'; }
