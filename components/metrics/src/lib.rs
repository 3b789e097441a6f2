//! `GET /metrics`: the shop's business and operations figures in Prometheus'
//! text exposition format (version 0.0.4), for a scraper holding the
//! `metrics_secret` (`Authorization: Bearer <metrics_secret>`).
//!
//! This component owns no data. Each service computes its own figures from
//! its own database, with indexed reads, behind its WIT contract
//! (`shop:catalog/metrics`, `shop:orders/metrics`,
//! `shop:notifications/metrics`; the cart's from its key-value store,
//! `shop:cart/metrics`), and Spin composes those contract components into
//! this one (see `spin.toml`), so a scrape is four in-process calls. A service that cannot answer (its database down) is
//! reported as `shop_metrics_source_up{source="..."} 0` and its figures are
//! left out, so the other services' figures still arrive.

mod exposition;

use exposition::{Family, Kind};
use http_kit::{ApiError, Ctx, HandlerResult, Reply, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

spin_sdk::wit_bindgen::generate!({
    world: "metrics-client",
    path: "../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

use shop::cart::metrics as cart;
use shop::catalog::metrics as catalog;
use shop::notifications::metrics as notifications;
use shop::orders::metrics as orders;
use shop::types::types::{SweepRuns, Unavailable};

const SERVICE: Service = Service { name: "metrics" };

/// The content type of Prometheus' text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match (ctx.method.as_str(), ctx.segments().as_slice()) {
        ("GET", ["metrics"]) => {
            http_kit::auth::require_bearer_secret(ctx, "metrics_secret")?;
            let body = exposition::render(&families(clock::unix_now()));
            Ok(Reply::bytes(200, CONTENT_TYPE, body.into_bytes()).with_header("cache-control", "no-store"))
        }
        (_, ["metrics"]) => Err(ApiError::method_not_allowed(&["GET"])),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

/// Every family, asking each service once.
fn families(now: i64) -> Vec<Family> {
    let mut up = Family::new("shop_metrics_source_up", "Whether the service answered this scrape (1) or not (0, its figures are missing).", Kind::Gauge);
    let mut out = Vec::new();
    let mut sweeps: Vec<(&str, SweepRuns)> = Vec::new();

    match orders::figures() {
        Ok(f) => {
            up.sample(&[("source", "orders")], 1);
            let mut by_status = Family::new("shop_orders", "Orders by status.", Kind::Gauge);
            for s in &f.by_status {
                by_status.sample(&[("status", s.status.as_str())], s.orders);
            }
            let mut revenue = Family::new(
                "shop_paid_revenue_minor",
                "Totals of paid orders less their refunds, per currency, in the currency's minor unit (cents, yen).",
                Kind::Gauge,
            );
            for m in &f.paid_revenue {
                revenue.sample(&[("currency", m.currency.as_str())], m.amount_minor);
            }
            out.push(by_status);
            out.push(revenue);
            out.push(Family::single("shop_orders_flagged", "Orders flagged for an admin (amount mismatch, paid after it ended, failed automatic refund).", Kind::Gauge, f.flagged));
            out.push(Family::single(
                "shop_stripe_webhook_signature_failures_total",
                "Stripe webhook requests refused for a missing, wrong or stale signature.",
                Kind::Counter,
                f.webhook_signature_failures,
            ));
            let mut owed = Family::new(
                "shop_catalog_changes_owed",
                "Stock changes (change=\"stock\": a sale or a release) and restocks (\"restock\") checkout owes the catalog, made by the next attempt or the orders sweep.",
                Kind::Gauge,
            );
            let mut owed_age = Family::new(
                "shop_catalog_changes_owed_oldest_age_seconds",
                "Age of the oldest change checkout owes the catalog, per kind (0: none is owed).",
                Kind::Gauge,
            );
            for o in &f.owed {
                owed.sample(&[("change", o.change.as_str())], o.owed);
                owed_age.sample(&[("change", o.change.as_str())], if o.owed > 0 { (now - o.oldest_at).max(0) } else { 0 });
            }
            out.extend([owed, owed_age]);
            sweeps.push(("orders", f.sweep));
        }
        Err(e) => source_down(&mut up, "orders", &e),
    }

    match catalog::figures() {
        Ok(f) => {
            up.sample(&[("source", "catalog")], 1);
            out.push(Family::single("shop_products_out_of_stock", "Active products with no units on hand.", Kind::Gauge, f.products_out_of_stock));
            out.push(Family::single("shop_reservations_live", "Stock holds of unpaid orders that have not lapsed, been committed or released.", Kind::Gauge, f.live_reservations));
        }
        Err(e) => source_down(&mut up, "catalog", &e),
    }

    match notifications::figures() {
        Ok(f) => {
            up.sample(&[("source", "notifications")], 1);
            let mut pending = Family::new("shop_deliveries_pending", "Deliveries waiting for an attempt or being sent, per channel.", Kind::Gauge);
            let mut failed = Family::new("shop_deliveries_failed", "Deliveries given up for good (refused, or out of retries), per channel.", Kind::Gauge);
            for d in &f.deliveries {
                pending.sample(&[("channel", d.channel.as_str())], d.pending);
                failed.sample(&[("channel", d.channel.as_str())], d.failed);
            }
            let mut lag = Family::new(
                "shop_outbox_oldest_undelivered_age_seconds",
                "Age of the oldest event of each outbox whose email is not out yet (0: none waits).",
                Kind::Gauge,
            );
            for o in &f.outboxes {
                lag.sample(&[("outbox", o.outbox.as_str())], o.oldest_undelivered_age_seconds);
            }
            out.extend([pending, failed, lag]);
            sweeps.push(("notifications", f.sweep));
        }
        Err(e) => source_down(&mut up, "notifications", &e),
    }

    match cart::figures() {
        Ok(f) => {
            up.sample(&[("source", "cart")], 1);
            sweeps.push(("cart", f.sweep));
        }
        Err(e) => source_down(&mut up, "cart", &e),
    }

    let mut runs = Family::new("shop_sweep_runs_total", "Completed runs of each scheduled sweep (POST /api/<sweep>/sweep).", Kind::Counter);
    let mut age = Family::new("shop_sweep_last_run_age_seconds", "Seconds since each sweep last completed (absent until it first runs).", Kind::Gauge);
    for (sweep, r) in &sweeps {
        runs.sample(&[("sweep", *sweep)], r.runs);
        // No time of a last run (the cart sweep's key lost by its store):
        // no age, rather than one of decades that sets off the alert.
        if r.runs > 0 && r.last_run_at > 0 {
            age.sample(&[("sweep", *sweep)], (now - r.last_run_at).max(0));
        }
    }
    out.extend([runs, age]);
    out.insert(0, up);
    out
}

fn source_down(up: &mut Family, source: &str, e: &Unavailable) {
    up.sample(&[("source", source)], 0);
    println!("{}", serde_json::json!({ "level": "warn", "service": "metrics", "source": source, "unavailable": e.message }));
}
