//! `GET /health`: the application's readiness, for load balancers and
//! Kubernetes probes. Ready means every service database is reachable and its
//! schema is current. Checking also applies pending migrations (through each
//! service's own code), so a readiness probe right after a deploy brings the
//! schema up before traffic arrives.
//!
//! This component is granted every service database for that purpose only;
//! each new service with a database adds its check here.

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

const SERVICE: Service = Service { name: "health" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match ctx.segments().as_slice() {
        ["health"] => {
            let catalog = catalog_core::open_database()
                .and_then(|db| storage::migrations::status(&db, catalog_core::schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
            let users = users_core::schema::open_database()
                .and_then(|db| storage::migrations::status(&db, users_core::schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
            let orders = orders_core::schema::open_database()
                .and_then(|db| storage::migrations::status(&db, orders_core::schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
            let notifications = notifications_core::schema::open_database()
                .and_then(|db| storage::migrations::status(&db, notifications_core::schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
            http_kit::health::report(
                ctx,
                "shop",
                vec![
                    http_kit::health::database_check(catalog_core::DATABASE_LABEL, catalog),
                    http_kit::health::database_check(users_core::schema::DATABASE_LABEL, users),
                    http_kit::health::database_check(orders_core::schema::DATABASE_LABEL, orders),
                    http_kit::health::database_check(notifications_core::schema::DATABASE_LABEL, notifications),
                    configuration_check(),
                ],
            )
        }
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

/// Settings that are wrong or conflict, every service's: not ready, each
/// problem named, and logged, rather than requests failing (or a setting
/// silently falling back to its default) later.
fn configuration_check() -> http_kit::health::Check {
    let get = |name: &str| spin_sdk::variables::get(name).unwrap_or_default().trim().to_string();
    let mut problems = payments_core::stripe::configuration_problems(&get);
    problems.extend(users_core::settings::configuration_problems(&get));
    problems.extend(notifications_core::settings::configuration_problems(&get));
    problems.extend(catalog_core::settings::configuration_problems(&get));
    let mut shared = http_kit::settings::Problems::default();
    shared.one_of(&get, "sqlite_synchronous", &["full", "normal"]);
    shared.one_of(&get, "require_postgres", &["true", "false"]);
    if get("require_postgres") == "true" {
        for name in ["catalog_database_url", "users_database_url", "orders_database_url", "notifications_database_url"] {
            if get(name).is_empty() {
                shared.add(format!(
                    "require_postgres is true but {name} is empty: this instance would keep that database in an SQLite file of its own, apart from every other instance's"
                ));
            }
        }
    }
    shared.duration(&get, "guest_cart_idle_ttl");
    problems.extend(shared.0);
    // Every service checks tokens with it; whether it is the other half of
    // the private key (which only the users service holds) is the users
    // service's health check (`token_keys`).
    if let Err(e) = http_kit::auth::Verifier::new(&get("jwt_public_key"), "shop", "shop-api") {
        problems.push(if e.starts_with("jwt_public_key") { e } else { format!("jwt_public_key: {e}") });
    }
    let result = if problems.is_empty() {
        Ok(serde_json::json!({ "status": "ok" }))
    } else {
        println!("{}", serde_json::json!({ "level": "error", "service": "health", "configuration_problems": problems }));
        Err(problems.join("; "))
    };
    http_kit::health::Check { name: "configuration", result }
}
