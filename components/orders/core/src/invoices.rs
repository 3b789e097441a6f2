//! Invoices and credit notes: the shop's books.
//!
//! An invoice is issued for every paid order in the transaction that marks
//! it paid, and a credit note for every refund of it in the transaction that
//! records the refund. Each document is numbered in its own series per
//! calendar year (`INV-2026-000042`, `CN-2026-000003`) from a counter row
//! incremented in that same transaction: a number is taken only by a
//! transaction that commits (a rolled-back one gives its increment back,
//! and concurrent ones wait on the counter's row), so no number is ever
//! skipped or used twice, on SQLite and on Postgres. A document is written
//! once, whole — seller, buyer, lines, taxes and totals frozen as they were
//! — and nothing ever updates it.
//!
//! Prices are tax-inclusive: with a rate configured, each document states
//! the tax contained in its total (rounded half up) and the net amount.

use crate::orders::Order;
use money::{Currency, Money};
use serde::Serialize;
use serde_json::{json, Value as Json};
use storage::{Db, DbError, Row};

/// Who sells, and the tax that is included in the prices, from Spin
/// variables (see the README's configuration table).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvoiceSettings {
    pub seller_name: String,
    /// Address lines (the variable separates them with `;`).
    pub seller_address: Vec<String>,
    pub seller_tax_id: String,
    pub seller_email: String,
    /// Tax included in the prices, in basis points (2000 = 20 %); 0 for none.
    pub tax_rate_bps: u32,
    pub tax_label: String,
    /// The storefront's address: the paid email links to the invoice page.
    pub storefront_url: String,
}

/// The highest tax rate accepted (100 %).
pub const MAX_TAX_RATE_BPS: u32 = 10_000;

impl InvoiceSettings {
    pub fn from_variables() -> Self {
        let get = crate::settings::variable;
        Self::from(&get)
    }

    /// From a variable reader (empty when unset).
    pub fn from(get: &dyn Fn(&str) -> String) -> Self {
        let name = get("invoice_seller_name");
        Self {
            seller_name: if name.trim().is_empty() { get("store_name").trim().to_string() } else { name.trim().to_string() },
            seller_address: get("invoice_seller_address").split(';').map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect(),
            seller_tax_id: get("invoice_seller_tax_id").trim().to_string(),
            seller_email: get("invoice_seller_email").trim().to_string(),
            tax_rate_bps: get("invoice_tax_rate_bps").trim().parse().ok().filter(|r| *r <= MAX_TAX_RATE_BPS).unwrap_or(0),
            tax_label: Some(get("invoice_tax_label").trim().to_string()).filter(|l| !l.is_empty()).unwrap_or_else(|| "VAT".into()),
            storefront_url: get("storefront_url").trim().trim_end_matches('/').to_string(),
        }
    }
}

/// The tax contained in a tax-inclusive `gross` amount at `rate_bps`,
/// rounded half up.
pub fn included_tax(gross: i64, rate_bps: u32) -> i64 {
    if rate_bps == 0 || gross <= 0 {
        return 0;
    }
    let (gross, rate) = (i128::from(gross), i128::from(rate_bps));
    let divisor = 10_000 + rate;
    ((gross * rate * 2 + divisor) / (divisor * 2)) as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Invoice,
    CreditNote,
}

impl Kind {
    fn as_str(&self) -> &'static str {
        match self {
            Kind::Invoice => "invoice",
            Kind::CreditNote => "credit_note",
        }
    }

    fn series(&self) -> &'static str {
        match self {
            Kind::Invoice => "INV",
            Kind::CreditNote => "CN",
        }
    }
}

/// A document as stored: its columns for listing, and the whole document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub number: String,
    pub kind: Kind,
    pub order_id: String,
    /// A credit note: the invoice it credits.
    pub invoice_number: Option<String>,
    pub issued_at: String,
    pub currency: String,
    pub net: Money,
    pub tax: Money,
    pub total: Money,
    /// Everything printed on it, frozen when it was issued.
    pub document: Json,
}

fn document(r: &Row) -> Result<Document, DbError> {
    let currency = r.text("currency")?;
    let c = Currency::parse(&currency).map_err(|e| DbError::Other(e.to_string()))?;
    Ok(Document {
        number: r.text("number")?,
        kind: if r.text("kind")? == "invoice" { Kind::Invoice } else { Kind::CreditNote },
        order_id: r.text("order_id")?,
        invoice_number: r.opt_text("invoice_number")?,
        issued_at: r.text("issued_at")?,
        net: Money::new(r.int("net_minor")?, c),
        tax: Money::new(r.int("tax_minor")?, c),
        total: Money::new(r.int("total_minor")?, c),
        currency,
        document: serde_json::from_str(&r.text("document")?).map_err(|e| DbError::Other(e.to_string()))?,
    })
}

/// The next number of `kind`'s series for `year`, in the caller's
/// transaction (see the module docs for why this is gapless).
fn next_number(tx: &dyn Db, kind: Kind, year: i64) -> Result<String, DbError> {
    let rows = tx.query(
        "INSERT INTO document_counters (series, year, last) VALUES (?, ?, 1) \
         ON CONFLICT (series, year) DO UPDATE SET last = document_counters.last + 1 RETURNING last",
        &[kind.series().into(), year.into()],
    )?;
    let n = rows.first().ok_or_else(|| DbError::Other("no document number".into()))?.int("last")?;
    Ok(format!("{}-{year}-{n:06}", kind.series()))
}

fn money_json(amount: i64, currency: &str) -> Json {
    json!({ "amount_minor": amount, "currency": currency })
}

/// What a document states besides its amounts: the seller, the buyer and
/// the tax. An invoice takes them from the settings and the order as they
/// are when it is issued; a credit note from the invoice it credits, so
/// that it reverses exactly what the invoice stated (found in review: a
/// credit note took today's tax rate and seller, and the order's address,
/// erased with its account).
struct Terms {
    seller: Json,
    buyer: Json,
    tax: Json,
}

impl Terms {
    fn current(order: &Order, settings: &InvoiceSettings) -> Terms {
        Terms {
            seller: json!({
                "name": settings.seller_name, "address": settings.seller_address,
                "tax_id": Some(&settings.seller_tax_id).filter(|t| !t.is_empty()),
                "email": Some(&settings.seller_email).filter(|e| !e.is_empty()),
            }),
            // The billing address is the order's address (the shop asks for one).
            buyer: json!({
                "name": order.shipping_address.as_ref().map(|a| a.name.clone()),
                "billing_address": order.shipping_address,
            }),
            tax: json!({ "label": settings.tax_label, "rate_bps": settings.tax_rate_bps, "included_in_prices": true }),
        }
    }

    fn of(invoice: &Document) -> Terms {
        let d = &invoice.document;
        Terms { seller: d["seller"].clone(), buyer: d["buyer"].clone(), tax: d["tax"].clone() }
    }

    fn rate_bps(&self) -> u32 {
        self.tax["rate_bps"].as_u64().and_then(|r| u32::try_from(r).ok()).unwrap_or(0)
    }
}

#[allow(clippy::too_many_arguments)]
fn issue(tx: &dyn Db, kind: Kind, order: &Order, source: &str, gross: i64, tax: i64, credits: Option<&str>, terms: Terms, storefront_url: &str, reason: Option<&str>) -> Result<Document, DbError> {
    let issued_at = clock::now_rfc3339();
    let issued_on = issued_at.get(..10).unwrap_or_default().to_string();
    let year: i64 = issued_at.get(..4).and_then(|y| y.parse().ok()).ok_or_else(|| DbError::Other("clock".into()))?;
    let number = next_number(tx, kind, year)?;
    let currency = order.currency.as_str();
    let lines: Vec<Json> = order
        .lines
        .iter()
        .map(|l| json!({ "sku": l.sku, "name": l.name, "quantity": l.quantity, "unit_price": l.unit_price, "line_total": l.line_total }))
        .collect();
    let doc = json!({
        "number": number,
        "kind": kind,
        "issued_at": issued_at,
        "order_id": order.id,
        "order_placed_at": order.created_at,
        "credits_invoice": credits,
        "reason": reason,
        "seller": terms.seller,
        "buyer": terms.buyer,
        "lines": if kind == Kind::Invoice { lines } else { Vec::new() },
        "tax": terms.tax,
        "net": money_json(gross - tax, currency),
        "tax_amount": money_json(tax, currency),
        "total": money_json(gross, currency),
        "url": if storefront_url.is_empty() { None } else { Some(format!("{storefront_url}/account/orders/{}/invoice", order.id)) },
    });
    let rows = tx.query(
        "INSERT INTO invoices (number, kind, order_id, invoice_number, source, issued_at, issued_on, currency, net_minor, tax_minor, total_minor, document) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        &[
            number.as_str().into(),
            kind.as_str().into(),
            order.id.as_str().into(),
            credits.into(),
            source.into(),
            issued_at.as_str().into(),
            issued_on.into(),
            currency.into(),
            (gross - tax).into(),
            tax.into(),
            gross.into(),
            doc.to_string().into(),
        ],
    )?;
    document(&rows.first().ok_or_else(|| DbError::Other("invoice not stored".into()))?)
}

/// Issue the order's invoice (once: the same order again returns it), in
/// the transaction that marks it paid.
pub fn issue_invoice(tx: &dyn Db, order: &Order, settings: &InvoiceSettings) -> Result<Document, DbError> {
    if let Some(existing) = issued(tx, Kind::Invoice, &order.id, "paid")? {
        return Ok(existing);
    }
    let gross = order.total.amount_minor;
    let tax = included_tax(gross, settings.tax_rate_bps);
    issue(tx, Kind::Invoice, order, "paid", gross, tax, None, Terms::current(order, settings), &settings.storefront_url, None)
}

/// The document of `kind` already issued for this order and source.
fn issued(tx: &dyn Db, kind: Kind, order_id: &str, source: &str) -> Result<Option<Document>, DbError> {
    tx.query("SELECT * FROM invoices WHERE kind = ? AND order_id = ? AND source = ?", &[kind.as_str().into(), order_id.into(), source.into()])?
        .first()
        .map(|r| document(&r))
        .transpose()
}

/// Issue a credit note for `amount` refunded of the order's invoice, in the
/// transaction that records the refund. `source` names the refund (once
/// per source). Nothing when the order has no invoice (it was never paid)
/// or the amount is not positive.
///
/// Its seller, buyer and tax rate are the invoice's. Its tax is what the
/// refunds so far bring the credited tax to, less what earlier credit
/// notes credited: the tax of the refunded total, rounded once, so that
/// credit notes for the whole amount credit exactly the invoice's tax
/// however the refunds were split.
pub fn issue_credit_note(tx: &dyn Db, order: &Order, amount: i64, source: &str, settings: &InvoiceSettings) -> Result<Option<Document>, DbError> {
    let Some(invoice) = invoice_of(tx, &order.id)? else { return Ok(None) };
    if amount < 1 {
        return Ok(None);
    }
    if let Some(existing) = issued(tx, Kind::CreditNote, &order.id, source)? {
        return Ok(Some(existing));
    }
    let earlier = credit_notes_of(tx, &order.id)?;
    let credited: i64 = earlier.iter().map(|d| d.total.amount_minor).sum();
    let credited_tax: i64 = earlier.iter().map(|d| d.tax.amount_minor).sum();
    let terms = Terms::of(&invoice);
    let after = (credited + amount).min(invoice.total.amount_minor);
    let tax = if after >= invoice.total.amount_minor {
        invoice.tax.amount_minor - credited_tax
    } else {
        included_tax(after, terms.rate_bps()) - credited_tax
    }
    .clamp(0, amount);
    issue(tx, Kind::CreditNote, order, source, amount, tax, Some(&invoice.number), terms, &settings.storefront_url, Some("refund")).map(Some)
}

/// The order's invoice, if it was paid.
pub fn invoice_of(db: &dyn Db, order_id: &str) -> Result<Option<Document>, DbError> {
    db.query("SELECT * FROM invoices WHERE order_id = ? AND kind = 'invoice'", &[order_id.into()])?.first().map(|r| document(&r)).transpose()
}

/// The order's credit notes, oldest first.
pub fn credit_notes_of(db: &dyn Db, order_id: &str) -> Result<Vec<Document>, DbError> {
    db.query("SELECT * FROM invoices WHERE order_id = ? AND kind = 'credit_note' ORDER BY number", &[order_id.into()])?
        .iter()
        .map(|r| document(&r))
        .collect()
}

/// Invoices and credit notes issued from `from` to `to` (UTC days,
/// `YYYY-MM-DD`, inclusive), by number within each series, a page at a
/// time, with the total (one indexed range over `issued_on`).
pub fn in_period(db: &dyn Db, from: &str, to: &str, limit: u32, offset: i64) -> Result<(Vec<Document>, i64), DbError> {
    let total = db
        .query("SELECT COUNT(*) AS n FROM invoices WHERE issued_on BETWEEN ? AND ?", &[from.into(), to.into()])?
        .first()
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    let page = db
        .query(
            "SELECT * FROM invoices WHERE issued_on BETWEEN ? AND ? ORDER BY issued_on, kind DESC, number LIMIT ? OFFSET ?",
            &[from.into(), to.into(), i64::from(limit).into(), offset.into()],
        )?
        .iter()
        .map(|r| document(&r))
        .collect::<Result<_, _>>()?;
    Ok((page, total))
}

/// A text cell of the CSV: a value a spreadsheet would read as a formula
/// (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return; the
/// buyer's name is the customer's own text) gets a `'` in front, so it
/// stays text; then RFC 4180 quoting.
fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A document as a CSV row (RFC 4180 quoting, text cells never formulas),
/// for the books.
pub fn csv_row(d: &Document) -> String {
    let quote = csv_text;
    let buyer = d.document["buyer"]["name"].as_str().unwrap_or("");
    [
        quote(&d.number),
        quote(d.kind.as_str()),
        quote(d.issued_at.get(..10).unwrap_or("")),
        quote(&d.order_id),
        quote(d.invoice_number.as_deref().unwrap_or("")),
        quote(buyer),
        quote(&d.currency),
        d.net.amount_minor.to_string(),
        d.tax.amount_minor.to_string(),
        d.total.amount_minor.to_string(),
    ]
    .join(",")
}

/// The CSV header matching [`csv_row`].
pub const CSV_HEADER: &str = "number,kind,issued_on,order_id,credits_invoice,buyer,currency,net_minor,tax_minor,total_minor";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{insert, NewOrder, OrderLine};
    use storage::native::MemDb;

    fn db_with_order(id: &str) -> (MemDb, Order) {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let line = OrderLine { product_id: "p".into(), sku: "S-1".into(), name: "Lamp, \"tall\"".into(), unit_price: Money::new(600, usd), quantity: 2, line_total: Money::new(1200, usd) };
        let order = insert(&db, &NewOrder { id: id.into(), user_id: "u".into(), currency: usd, lines: vec![line], shipping_address: None, expires_at: 10, cart_version: None }, "u").unwrap();
        (db, order)
    }

    #[test]
    fn tax_included_in_prices_rounds_half_up() {
        assert_eq!(included_tax(1200, 2000), 200, "20 % of a 1200 gross is 200");
        assert_eq!(included_tax(1000, 2000), 167, "166.67 rounds up");
        assert_eq!(included_tax(1000, 0), 0);
        assert_eq!(included_tax(1, 700), 0);
        assert_eq!(included_tax(i64::MAX / 2, 10_000), i64::MAX / 4 + 1, "no overflow");
    }

    #[test]
    fn numbers_are_sequential_per_series_and_year_and_documents_are_issued_once() {
        let (db, order) = db_with_order("o1");
        let settings = InvoiceSettings { seller_name: "Shop & Co".into(), tax_rate_bps: 2000, tax_label: "VAT".into(), ..Default::default() };
        let year = &clock::now_rfc3339()[..4];
        let inv = issue_invoice(&db, &order, &settings).unwrap();
        assert_eq!(inv.number, format!("INV-{year}-000001"));
        assert_eq!((inv.net.amount_minor, inv.tax.amount_minor, inv.total.amount_minor), (1000, 200, 1200));
        assert_eq!(issue_invoice(&db, &order, &settings).unwrap().number, inv.number, "once per order");
        let cn = issue_credit_note(&db, &order, 600, "refunded:600", &settings).unwrap().unwrap();
        assert_eq!((cn.number.clone(), cn.invoice_number.clone()), (format!("CN-{year}-000001"), Some(inv.number.clone())));
        assert_eq!(issue_credit_note(&db, &order, 600, "refunded:600", &settings).unwrap().unwrap().number, cn.number, "once per refund");
        let cn2 = issue_credit_note(&db, &order, 600, "refunded:1200", &settings).unwrap().unwrap();
        assert_eq!(cn2.number, format!("CN-{year}-000002"));
        let (_, other) = db_with_order("o2");
        let second = issue_invoice(&db, &{ let mut o = other; o.id = "o1-copy".into(); o }, &settings);
        assert!(second.is_err(), "an invoice needs its order row");
        let (all, total) = in_period(&db, "2000-01-01", "2999-12-31", 10, 0).unwrap();
        assert_eq!(total, 3);
        assert_eq!(all[0].number, inv.number, "invoices before credit notes on a day");
        assert!(csv_row(&all[0]).starts_with(&format!("{},invoice,", inv.number)));
    }

    /// Found in review: each credit note rounded its own tax (ten refunds
    /// of 100 credited 10 × 17 = 170 against an invoice's 167), and took
    /// the tax rate, seller and buyer as they were when it was issued.
    #[test]
    fn credit_notes_credit_exactly_the_invoice_s_tax_on_the_invoice_s_terms() {
        let (db, mut order) = db_with_order("o1");
        order.shipping_address = Some(crate::domain::Address {
            name: "Ann Lee".into(), line1: "1 Main St".into(), line2: None, city: "Springfield".into(),
            region: None, postal_code: "12345".into(), country: "US".into(),
        });
        let settings = InvoiceSettings { seller_name: "Shop & Co".into(), tax_rate_bps: 2000, tax_label: "VAT".into(), ..Default::default() };
        let invoice = issue_invoice(&db, &order, &settings).unwrap();
        assert_eq!(invoice.tax.amount_minor, 200);
        // Today the rate is 0 and the seller renamed; the account's address erased.
        let today = InvoiceSettings { seller_name: "New Name Ltd".into(), tax_rate_bps: 0, tax_label: "GST".into(), ..Default::default() };
        order.shipping_address = None;
        let mut credited_tax = 0;
        for n in 1..=12 {
            let cn = issue_credit_note(&db, &order, 100, &format!("refunded:{}", n * 100), &today).unwrap().unwrap();
            credited_tax += cn.tax.amount_minor;
            assert_eq!(cn.tax.amount_minor + cn.net.amount_minor, 100);
            assert_eq!(cn.document["tax"], invoice.document["tax"], "the invoice's rate and label");
            assert_eq!(cn.document["seller"]["name"], "Shop & Co");
            assert_eq!(cn.document["buyer"]["name"], "Ann Lee", "the invoice's buyer");
            assert_eq!(credited_tax, included_tax(n * 100, 2000), "after {n} refunds: the refunded total's tax, rounded once");
        }
        assert_eq!(credited_tax, invoice.tax.amount_minor, "a full refund credits exactly the invoice's tax");
    }

    #[test]
    fn a_csv_text_cell_is_never_a_formula() {
        assert_eq!(csv_text("Ann Lee"), "Ann Lee");
        assert_eq!(csv_text("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        assert_eq!(csv_text("+1 555"), "'+1 555");
        assert_eq!(csv_text("-2+3"), "'-2+3");
        assert_eq!(csv_text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_text("Lee, Ann"), "\"Lee, Ann\"");
    }

    #[test]
    fn a_rolled_back_number_is_given_back() {
        let (db, order) = db_with_order("o1");
        let settings = InvoiceSettings::default();
        let failed: Result<(), DbError> = storage::transaction(&db, |tx| {
            issue_invoice(tx, &order, &settings)?;
            Err(DbError::Other("the payment's transaction failed".into()))
        });
        assert!(failed.is_err());
        assert!(invoice_of(&db, "o1").unwrap().is_none());
        let year = &clock::now_rfc3339()[..4];
        assert_eq!(issue_invoice(&db, &order, &settings).unwrap().number, format!("INV-{year}-000001"), "no gap");
    }

    #[test]
    fn settings_come_from_variables() {
        let vars = |n: &str| match n {
            "store_name" => "Shop".to_string(),
            "invoice_seller_address" => "1 Main St; Springfield ;".to_string(),
            "invoice_tax_rate_bps" => "2000".to_string(),
            _ => String::new(),
        };
        let s = InvoiceSettings::from(&vars);
        assert_eq!((s.seller_name.as_str(), s.seller_address.len(), s.tax_rate_bps, s.tax_label.as_str()), ("Shop", 2, 2000, "VAT"));
    }
}
