//! Prints, one per line, the `--variable name=value` arguments an app must be
//! started with for the API suite to run against it (`SHOP_BASE_URL`): the
//! suite's settings and its fakes at their fixed addresses. Used by
//! `scripts/test-long-lived.sh`; the README's real-Spin recipe passes the
//! same list to `spin up`.

fn main() {
    for (name, value) in api_tests::external_app_variables() {
        println!("--variable");
        println!("{name}={value}");
    }
}
