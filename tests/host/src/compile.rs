//! The shared wasmtime `Engine` and a compiled-component cache.
//!
//! Cranelift compiles of a component take seconds in this (debug) host, and
//! every test starts a host, so compiled code is cached twice: in memory
//! for the life of the process, and on disk as `<sha256>.cwasm` under
//! `target/shop-test-host-cache/` (override: `SHOP_TEST_HOST_CACHE_DIR`).
//! The hash covers the wasm bytes, the wasmtime major version and the
//! engine's compatibility hash, and wasmtime re-checks compatibility on
//! deserialize; a stale or corrupt file is simply recompiled.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One engine per process, so components compiled for one host are reused
/// by the next.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        if pooling_wanted() {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(spin_pooling()));
        }
        // `SHOP_TEST_HOST_PERFMAP=1`: write /tmp/perf-<pid>.map so `perf`
        // can name the guest's functions (profiling only).
        if std::env::var_os("SHOP_TEST_HOST_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Engine::new(&config).expect("the engine configuration is valid")
    })
}

/// Spin runs every request's instance from wasmtime's pooling allocator
/// when the machine has the address space for it (`spin-core`'s
/// `use_pooling_allocator_by_default`, with the escape hatch
/// `SPIN_WASMTIME_POOLING=0|1`): memories, tables and async stacks come
/// from slots reserved once, so an instance costs no `mmap`/`munmap`. The
/// test host does the same, so per-request costs compare with `spin up`.
fn pooling_wanted() -> bool {
    match std::env::var("SPIN_WASMTIME_POOLING").as_deref() {
        Ok("0") => return false,
        Ok("1") => return true,
        _ => {}
    }
    // Spin's probe: can this process reserve 2^42 bytes for one memory?
    const BITS: u32 = 42;
    let mut probe = Config::new();
    probe.wasm_memory64(true);
    probe.memory_reservation(1 << BITS);
    let Ok(engine) = Engine::new(&probe) else { return false };
    let mut store = wasmtime::Store::new(&engine, ());
    wasmtime::Memory::new(&mut store, wasmtime::MemoryType::new64(0, Some(1 << (BITS - 16)))).is_ok()
}

/// Spin's pooling limits (`spin-core`'s `Config::default`): 1000 instances
/// at once, and per-component limits generous enough for composed
/// components.
fn spin_pooling() -> PoolingAllocationConfig {
    const MB: usize = 1 << 20;
    let max_instances = 1_000;
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(max_instances)
        .total_memories(max_instances)
        .total_tables(2 * max_instances)
        .total_stacks(max_instances)
        .total_core_instances(4 * max_instances)
        .table_elements(100_000)
        .max_component_instance_size(10 * MB)
        .max_core_instance_size(10 * MB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(2 * MB)
        .table_keep_resident(MB / 2);
    pooling
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHOP_TEST_HOST_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let target = option_env!("SHOP_TEST_HOST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("shop-test-host-cache")
}

fn cache_key(bytes: &[u8]) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine().precompile_compatibility_hash().hash(&mut compat);
    let mut sha = Sha256::new();
    sha.update(bytes);
    sha.update(b"wasmtime-48");
    sha.update(compat.finish().to_le_bytes());
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles `bytes` (a component), using the caches.
pub fn compile(bytes: &[u8], what: &str) -> Result<Component> {
    // Held across the compile so parallel tests do not compile the same
    // component twice at once on a 2-core machine.
    static MEMORY: OnceLock<Mutex<HashMap<String, Component>>> = OnceLock::new();
    let mut memory = MEMORY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = cache_key(bytes);
    if let Some(component) = memory.get(&key) {
        return Ok(component.clone());
    }

    let dir = cache_dir();
    let file = dir.join(format!("{key}.cwasm"));
    if file.is_file() {
        // SAFETY: the file was produced by `Component::serialize` of this
        // same engine configuration (the key includes its compatibility
        // hash) and is only written atomically by us; wasmtime additionally
        // validates the header and refuses incompatible artifacts.
        match unsafe { Component::deserialize_file(engine(), &file) } {
            Ok(component) => {
                memory.insert(key, component.clone());
                return Ok(component);
            }
            Err(e) => eprintln!(
                "shop-test-host: ignoring unusable cache file {}: {e:#}",
                file.display()
            ),
        }
    }

    let component = Component::new(engine(), bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {what}"))?;
    if let Err(e) = write_cache(&dir, &file, &component) {
        eprintln!(
            "shop-test-host: could not write compile cache {}: {e:#}",
            file.display()
        );
    }
    memory.insert(key, component.clone());
    Ok(component)
}

/// Cache entries unused for this long are removed when a new one is written,
/// so rebuilt components do not pile up forever.
const CACHE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

fn write_cache(dir: &std::path::Path, file: &std::path::Path, component: &Component) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.accessed().or_else(|_| m.modified()))
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > CACHE_MAX_AGE);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        file.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}
