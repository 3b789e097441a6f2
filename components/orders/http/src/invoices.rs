//! Invoices and credit notes over HTTP:
//! - `GET /api/orders/{id}/invoice` — the order's invoice and credit notes
//!   (its owner or an admin), as JSON, or as a printable HTML page with
//!   `Accept: text/html`;
//! - `GET /api/orders/invoices?from=&to=[&format=csv]` — every document of
//!   a period, for the books (admins).

use http_kit::html::escape as esc;
use http_kit::{ApiError, Ctx, HandlerResult, Pagination, Reply};
use orders_core::admin_listing::Day;
use orders_core::invoices::{self, Document};
use orders_core::schema;
use payments_core::access;
use serde_json::{json, Value as Json};

pub fn of_order(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = schema::open_database()?;
    let order = access::order_for(&db, &caller, id, true)?;
    let invoice = invoices::invoice_of(&db, &order.id)?
        .ok_or_else(|| ApiError::new(404, "no_invoice", "the order has no invoice: one is issued when it is paid"))?;
    let credit_notes = invoices::credit_notes_of(&db, &order.id)?;
    let wants_html = ctx.header("accept").is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return Ok(Reply::bytes(200, "text/html; charset=utf-8", printable(&invoice, &credit_notes).into_bytes())
            .with_header("cache-control", "private, no-store")
            .with_header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
            .with_header("vary", "Accept, Origin"));
    }
    Ok(Reply::ok(&json!({ "invoice": invoice, "credit_notes": credit_notes })).with_header("cache-control", "private, no-store").with_header("vary", "Accept, Origin"))
}

pub fn in_period(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let day = |name: &str| -> Result<Day, ApiError> {
        let raw = ctx.query.get(name).ok_or_else(|| ApiError::invalid_parameter(name, "is required (YYYY-MM-DD)"))?;
        Day::parse(raw).map_err(|e| ApiError::invalid_parameter(name, e))
    };
    let (from, to) = (day("from")?, day("to")?);
    // A period that ends before it starts is valid and holds nothing.
    let format = ctx.query.one_of("format", &["json", "csv"])?.unwrap_or("json");
    // Checked whatever the format (the CSV holds the whole period).
    let page = Pagination::from_query(&ctx.query)?;
    let db = schema::open_database()?;
    if format == "csv" {
        // The whole period, a page of the database at a time.
        let mut csv = String::from(invoices::CSV_HEADER);
        csv.push_str("\r\n");
        let mut offset = 0;
        loop {
            let (page, total) = invoices::in_period(&db, from.as_str(), to.as_str(), 500, offset)?;
            for d in &page {
                csv.push_str(&invoices::csv_row(d));
                csv.push_str("\r\n");
            }
            offset += page.len() as i64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        let name = format!("attachment; filename=\"documents-{}-{}.csv\"", from.as_str(), to.as_str());
        return Ok(Reply::bytes(200, "text/csv; charset=utf-8", csv.into_bytes()).with_header("content-disposition", name).with_header("cache-control", "no-store"));
    }
    let (found, total) = invoices::in_period(&db, from.as_str(), to.as_str(), page.limit, page.offset())?;
    Ok(Reply::ok(&json!({ "documents": found, "page": page.page, "limit": page.limit, "total": total })).with_header("cache-control", "no-store"))
}

/// An amount as its currency writes it (2 decimals for USD, none for JPY).
fn amount(m: &Json) -> String {
    let minor = m["amount_minor"].as_i64().unwrap_or(0);
    let code = m["currency"].as_str().unwrap_or("");
    match money::Currency::parse(code) {
        Ok(c) => format!("{} {code}", money::Money::new(minor, c).to_decimal_string()),
        Err(_) => format!("{minor} {code}"),
    }
}

fn address(a: &Json) -> String {
    if a.is_null() {
        return String::new();
    }
    let parts = ["name", "line1", "line2", "postal_code", "city", "region", "country"];
    parts.iter().filter_map(|k| a[k].as_str()).filter(|s| !s.is_empty()).map(esc).collect::<Vec<_>>().join("<br>")
}

/// The invoice and its credit notes as one printable page. Every value is
/// escaped; the page loads nothing.
fn printable(invoice: &Document, credit_notes: &[Document]) -> String {
    let d = &invoice.document;
    let seller = &d["seller"];
    let seller_lines: Vec<String> = seller["address"].as_array().map(|a| a.iter().filter_map(|l| l.as_str()).map(esc).collect()).unwrap_or_default();
    let lines: String = d["lines"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                        esc(l["sku"].as_str().unwrap_or("")),
                        esc(l["name"].as_str().unwrap_or("")),
                        l["quantity"],
                        amount(&l["unit_price"]),
                        amount(&l["line_total"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let tax_label = esc(d["tax"]["label"].as_str().unwrap_or("Tax"));
    let rate = d["tax"]["rate_bps"].as_u64().unwrap_or(0);
    let notes: String = credit_notes
        .iter()
        .map(|n| format!("<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>", esc(&n.number), esc(n.issued_at.get(..10).unwrap_or("")), amount(&n.document["tax_amount"]), amount(&n.document["total"])))
        .collect();
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("<h2>Credit notes</h2><table><thead><tr><th>Number</th><th>Date</th><th class=n>{tax_label} included</th><th class=n>Credited</th></tr></thead><tbody>{notes}</tbody></table>")
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Invoice {number}</title>\
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:48em;color:#111}}table{{border-collapse:collapse;width:100%;margin:1em 0}}\
th,td{{border-bottom:1px solid #ccc;padding:.3em .5em;text-align:left}}.n{{text-align:right}}.parties{{display:flex;justify-content:space-between;gap:2em}}\
@media print{{body{{margin:0}}}}</style></head><body>\
<h1>Invoice {number}</h1><p>Issued {issued} · Order {order}</p>\
<div class=parties><div><h2>From</h2><p>{seller_name}<br>{seller_address}{tax_id}{email}</p></div>\
<div><h2>Bill to</h2><p>{buyer}</p></div></div>\
<table><thead><tr><th>SKU</th><th>Item</th><th class=n>Qty</th><th class=n>Unit price</th><th class=n>Total</th></tr></thead><tbody>{lines}</tbody>\
<tfoot><tr><th colspan=4 class=n>Net</th><td class=n>{net}</td></tr><tr><th colspan=4 class=n>{tax_label} ({rate_pct}%, included)</th><td class=n>{tax}</td></tr>\
<tr><th colspan=4 class=n>Total</th><td class=n><strong>{total}</strong></td></tr></tfoot></table>{notes}</body></html>",
        number = esc(&invoice.number),
        issued = esc(invoice.issued_at.get(..10).unwrap_or("")),
        order = esc(&invoice.order_id),
        seller_name = esc(seller["name"].as_str().unwrap_or("")),
        seller_address = seller_lines.join("<br>"),
        tax_id = seller["tax_id"].as_str().map(|t| format!("<br>Tax id: {}", esc(t))).unwrap_or_default(),
        email = seller["email"].as_str().map(|e| format!("<br>{}", esc(e))).unwrap_or_default(),
        buyer = address(&d["buyer"]["billing_address"]),
        net = amount(&d["net"]),
        tax = amount(&d["tax_amount"]),
        total = amount(&d["total"]),
        rate_pct = format!("{}.{:02}", rate / 100, rate % 100),
    )
}
