//! Generates the host-side bindings for the Spin interfaces.
//!
//! The WIT is not vendored into this repository: it is read from the
//! `wit/` folder of the exact `spin-sdk` crate the components are built
//! with, so the host always binds the same interface definitions the guests
//! were compiled against. The crate is located with `cargo metadata`; the
//! interfaces the host implements are copied from it into `OUT_DIR`, and a
//! small `bindgen!` invocation with that absolute path is written next to
//! them for `src/bindings.rs` to `include!`. The same `cargo metadata` call
//! also gives the workspace target dir for the compiled-component cache.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

const SPIN_SDK_VERSION: &str = "5.2.0";

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());

    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .context("running `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing `cargo metadata` output")?;

    let sdk_manifest = metadata["packages"]
        .as_array()
        .context("`cargo metadata` has no packages")?
        .iter()
        .find(|p| p["name"] == "spin-sdk" && p["version"] == SPIN_SDK_VERSION)
        .and_then(|p| p["manifest_path"].as_str())
        .with_context(|| {
            format!("spin-sdk {SPIN_SDK_VERSION} is not in the workspace's dependency graph")
        })?;
    let wit_dir = PathBuf::from(sdk_manifest)
        .parent()
        .context("spin-sdk manifest has no parent dir")?
        .join("wit");
    if !wit_dir.is_dir() {
        bail!("spin-sdk WIT folder not found at {}", wit_dir.display());
    }
    println!("cargo:rerun-if-changed={}", wit_dir.display());

    // The compiled-component cache lives in the workspace target dir.
    if let Some(target) = metadata["target_directory"].as_str() {
        println!("cargo:rustc-env=SHOP_TEST_HOST_TARGET_DIR={target}");
    }

    // wasmtime's `bindgen!` refuses a WIT resolve that contains any
    // `stream`/`future` type unless wasmtime's `component-model-async`
    // feature is on, and the SDK folder also carries the WASIp3 release
    // candidates. Rather than enlarge wasmtime, copy just the interfaces the
    // host implements (byte for byte, at build time) into a small WIT tree
    // in OUT_DIR. `fermyon:spin@2.0.0` declares its package name in a file
    // we do not need (world.wit), so a one-line package file stands in.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let tree = out_dir.join("spin-wit");
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    let fermyon = tree.join("deps").join("fermyon-spin");
    let spin_sqlite = tree.join("deps").join("spin-sqlite");
    std::fs::create_dir_all(&fermyon)?;
    std::fs::create_dir_all(&spin_sqlite)?;
    for file in ["key-value.wit", "redis.wit", "sqlite.wit", "variables.wit"] {
        let from = wit_dir.join("deps").join("spin@2.0.0").join(file);
        std::fs::copy(&from, fermyon.join(file))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    std::fs::write(fermyon.join("package.wit"), "package fermyon:spin@2.0.0;\n")?;
    let from = wit_dir
        .join("deps")
        .join("spin-sqlite@3.0.0")
        .join("sqlite.wit");
    std::fs::copy(&from, spin_sqlite.join("sqlite.wit"))
        .with_context(|| format!("copying {}", from.display()))?;
    // `wasi:keyvalue@0.2.0-draft2` (Spin 3.x's `store`, `atomics` and
    // `batch`): its package line lives in world.wit, which also declares a
    // world exporting `watcher` that the host does not need.
    let wasi_keyvalue = tree.join("deps").join("wasi-keyvalue");
    std::fs::create_dir_all(&wasi_keyvalue)?;
    for file in ["store.wit", "atomic.wit", "batch.wit"] {
        let from = wit_dir.join("deps").join("keyvalue-2024-10-17").join(file);
        std::fs::copy(&from, wasi_keyvalue.join(file))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    std::fs::write(
        wasi_keyvalue.join("package.wit"),
        "package wasi:keyvalue@0.2.0-draft2;\n",
    )?;
    // `spin:postgres@4.0.0` (the SDK's `pg4`, Spin >= 3.4): one file that
    // carries its own package line.
    let spin_postgres = tree.join("deps").join("spin-postgres");
    std::fs::create_dir_all(&spin_postgres)?;
    let from = wit_dir
        .join("deps")
        .join("spin-postgres@4.0.0")
        .join("postgres.wit");
    std::fs::copy(&from, spin_postgres.join("postgres.wit"))
        .with_context(|| format!("copying {}", from.display()))?;
    std::fs::write(
        tree.join("host.wit"),
        "package shop:test-host;\n\n\
         world host {\n\
         \x20   import fermyon:spin/key-value@2.0.0;\n\
         \x20   import fermyon:spin/redis@2.0.0;\n\
         \x20   import fermyon:spin/sqlite@2.0.0;\n\
         \x20   import fermyon:spin/variables@2.0.0;\n\
         \x20   import spin:sqlite/sqlite@3.0.0;\n\
         \x20   import spin:postgres/postgres@4.0.0;\n\
         \x20   import wasi:keyvalue/store@0.2.0-draft2;\n\
         \x20   import wasi:keyvalue/atomics@0.2.0-draft2;\n\
         \x20   import wasi:keyvalue/batch@0.2.0-draft2;\n\
         }\n",
    )?;

    let wit_path = tree.to_str().context("non-UTF-8 OUT_DIR")?;
    let bindings = format!(
        r#"wasmtime::component::bindgen!({{
    path: {wit_path:?},
    world: "shop:test-host/host",
    imports: {{ default: async | trappable }},
    with: {{
        "fermyon:spin/key-value@2.0.0.store": crate::key_value::StoreHandle,
        "fermyon:spin/redis@2.0.0.connection": crate::outbound_redis::RedisConnection,
        "fermyon:spin/sqlite@2.0.0.connection": crate::sqlite::ConnectionHandle,
        "spin:sqlite/sqlite@3.0.0.connection": crate::sqlite::ConnectionHandle,
        "spin:postgres/postgres@4.0.0.connection": crate::postgres::PgConnection,
        "wasi:keyvalue/store@0.2.0-draft2.bucket": crate::key_value::StoreHandle,
        "wasi:keyvalue/atomics@0.2.0-draft2.cas": crate::key_value::CasHandle,
    }},
}});
"#
    );
    let out = out_dir.join("spin_bindings.rs");
    std::fs::write(&out, bindings).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
