//! Loading an application: manifest + runtime config + variables → grants,
//! and component wasm → (composed) → compiled → linked → pre-instantiated.
//!
//! Everything that `spin up` would reject at start-up is rejected here,
//! before the host listens, with an error naming the component and the
//! offending item.

use crate::bindings;
use crate::compose::{self, Dependency};
use crate::files;
use crate::manifest::{Manifest, RouteSpec};
use crate::outbound::AllowedHosts;
use crate::routing::Router;
use crate::runtime_config::RuntimeConfig;
use crate::server::{App, LoadedComponent};
use crate::state::{AppStores, ComponentConfig, HostState};
use crate::variables::{AppVariables, ComponentVariables};
use crate::{compile, HostOptions};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The linker with everything the host provides: WASI 0.2 (CLI, clocks,
/// filesystem, random, sockets, I/O), `wasi:http`, and the Spin interfaces.
/// Anything else a component imports makes instantiation fail, naming the
/// import.
fn linker() -> Result<Linker<HostState>> {
    let mut linker = Linker::new(compile::engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::fermyon::spin::key_value::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::fermyon::spin::redis::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::fermyon::spin::sqlite::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::fermyon::spin::variables::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::spin::sqlite::sqlite::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::spin::postgres::postgres::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::wasi::keyvalue::store::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::wasi::keyvalue::atomics::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    bindings::wasi::keyvalue::batch::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

pub fn load(opts: &HostOptions) -> Result<Arc<App>> {
    let manifest = Manifest::load(&opts.manifest)?;
    let runtime = RuntimeConfig::load(opts.runtime_config.as_deref())?;
    let app_variables = AppVariables::resolve(&manifest.raw.variables, &opts.variables)?;

    for sub in ["sqlite", "key_value"] {
        std::fs::create_dir_all(opts.state_dir.join(sub))
            .with_context(|| format!("creating state dir {}", opts.state_dir.display()))?;
    }
    let stores = Arc::new(AppStores {
        state_dir: opts.state_dir.clone(),
        sqlite_databases: runtime.sqlite_databases.clone(),
        key_value_stores: runtime.key_value_stores.clone(),
        key_value_redis: crate::key_value_redis::RedisStores::new(&runtime.key_value_redis)?,
        postgres: Default::default(),
    });

    let mut public_routes = Vec::new();
    let mut triggered = BTreeSet::new();
    for trigger in &manifest.raw.trigger.http {
        let id = trigger.component_id()?;
        match &trigger.route {
            RouteSpec::Path(route) => public_routes.push((route.as_str(), id)),
            RouteSpec::Private { private: true } => {}
            RouteSpec::Private { private: false } => {
                bail!("component `{id}`: `route = {{ private = false }}` is not valid; use a path")
            }
        }
        triggered.insert(id.to_string());
    }
    let router = Router::new(public_routes)?;

    let linker = linker()?;
    let mut components = HashMap::new();
    // Like Spin, only components some trigger refers to are loaded.
    for id in &triggered {
        let loaded = load_component(&manifest, id, &runtime, &app_variables, opts, &linker)
            .with_context(|| format!("loading component `{id}`"))?;
        components.insert(id.clone(), loaded);
    }
    Ok(Arc::new(App {
        components,
        router,
        stores,
    }))
}

fn load_component(
    manifest: &Manifest,
    id: &str,
    runtime: &RuntimeConfig,
    app_variables: &AppVariables,
    opts: &HostOptions,
    linker: &Linker<HostState>,
) -> Result<LoadedComponent> {
    let def = &manifest.raw.component[id];

    for label in &def.key_value_stores {
        if !runtime.key_value_stores.contains(label) {
            bail!(
                "key-value store `{label}` is not defined: declare `[key_value_store.{label}]` in \
                 the runtime config file (only `default` exists without one)"
            );
        }
    }
    for label in &def.sqlite_databases {
        if !runtime.sqlite_databases.contains(label) {
            bail!(
                "SQLite database `{label}` is not defined: declare `[sqlite_database.{label}]` in \
                 the runtime config file (only `default` exists without one)"
            );
        }
    }

    let hosts = def
        .allowed_outbound_hosts
        .iter()
        .map(|entry| app_variables.expand(entry))
        .collect::<Result<Vec<_>>>()?;
    let allowed_hosts = Arc::new(AllowedHosts::parse(&hosts)?);
    let variables = ComponentVariables::resolve(id, &def.variables, app_variables)?;
    let files_dir = files::stage(
        id,
        &manifest.dir,
        &def.files,
        &def.exclude_files,
        &opts.state_dir.join(".files").join(id),
    )?;

    let source = manifest.source_path(id)?;
    let mut bytes = read_wasm(&source)?;
    if !def.dependencies.is_empty() {
        let mut dependencies = Vec::new();
        for (key, spec) in &def.dependencies {
            let path = manifest.path(spec.path.as_deref().expect("validated in manifest"));
            dependencies.push(Dependency {
                key: key.clone(),
                origin: path.display().to_string(),
                bytes: read_wasm(&path)?,
                export: spec.export.clone(),
            });
        }
        bytes = compose::compose(
            id,
            &bytes,
            &dependencies,
            def.dependencies_inherit_configuration,
        )?;
    }

    let component = compile::compile(&bytes, &format!("component `{id}`"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .context("the component imports an interface the shop test host does not provide")?;
    let pre = ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .context("the component does not export `wasi:http/incoming-handler@0.2.x`")?;

    let config = Arc::new(ComponentConfig {
        id: id.to_string(),
        key_value_stores: def.key_value_stores.iter().cloned().collect(),
        sqlite_databases: def.sqlite_databases.iter().cloned().collect(),
        variables,
        environment: def
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        files_dir,
    });
    Ok(LoadedComponent {
        pre,
        config,
        allowed_hosts,
    })
}

fn read_wasm(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read {} — build the wasm first (`cargo build --release --target wasm32-wasip2 -p <crate>`)",
            path.display()
        )
    })
}
