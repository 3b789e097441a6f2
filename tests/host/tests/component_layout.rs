//! The memory layout every shop component is linked with
//! (`components/shared/wasm-stack`): a small stack, and an initial memory
//! with room for the heap of a hot request. Neither changes behaviour, so
//! no other test would notice a component built without them; the
//! benchmark would (README, "Benchmarks").

mod common;

use std::path::{Path, PathBuf};
use wasmparser::{DataKind, Operator, Parser, Payload, TypeRef};

/// Every `.wasm` file `spin.toml` loads: component sources and the
/// components composed into them.
fn shop_components() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest: toml::Table = std::fs::read_to_string(root.join("spin.toml"))
        .expect("spin.toml is readable")
        .parse()
        .expect("spin.toml parses");
    let mut paths = Vec::new();
    for (_, component) in manifest["component"].as_table().expect("components") {
        if let Some(source) = component.get("source").and_then(|s| s.as_str()) {
            paths.push(source.to_string());
        }
        for (_, dependency) in component.get("dependencies").and_then(|d| d.as_table()).into_iter().flatten() {
            if let Some(path) = dependency.get("path").and_then(|p| p.as_str()) {
                paths.push(path.to_string());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| p.ends_with(".wasm"))
        .map(|p| {
            let name = Path::new(&p).file_stem().unwrap().to_string_lossy().into_owned();
            common::wasm_path(&name)
        })
        .collect()
}

/// Of each core module that defines its memory: the initial memory in
/// bytes, the stack pointer's starting value and where the data ends.
#[derive(Debug, Default)]
struct Layout {
    /// An adapter or shim imports its memory; it does not decide the layout.
    imports_memory: bool,
    initial_bytes: u64,
    stack_pointer: Option<i64>,
    data_end: u64,
}

fn layouts(wasm: &[u8]) -> Vec<Layout> {
    let mut found = Vec::new();
    let mut current: Option<Layout> = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("the component parses") {
            Payload::ModuleSection { .. } => current = Some(Layout::default()),
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if let (Some(layout), TypeRef::Memory(_)) = (&mut current, import.expect("import").ty) {
                        layout.imports_memory = true;
                    }
                }
            }
            Payload::MemorySection(memories) => {
                if let (Some(layout), Some(memory)) = (&mut current, memories.into_iter().next()) {
                    layout.initial_bytes = memory.expect("memory").initial * 65536;
                }
            }
            Payload::GlobalSection(globals) => {
                if let (Some(layout), Some(global)) = (&mut current, globals.into_iter().next()) {
                    // wasm-ld's first global is `__stack_pointer`.
                    let global = global.expect("global");
                    if global.ty.mutable {
                        if let Some(Ok(Operator::I32Const { value })) = global.init_expr.get_operators_reader().into_iter().next() {
                            layout.stack_pointer = Some(value as i64);
                        }
                    }
                }
            }
            Payload::DataSection(data) => {
                for segment in data {
                    let segment = segment.expect("data segment");
                    if let (Some(layout), DataKind::Active { offset_expr, .. }) = (&mut current, segment.kind) {
                        if let Some(Ok(Operator::I32Const { value })) = offset_expr.get_operators_reader().into_iter().next() {
                            layout.data_end = layout.data_end.max(value as u64 + segment.data.len() as u64);
                        }
                    }
                }
            }
            Payload::End(_) => {
                if let Some(layout) = current.take() {
                    if !layout.imports_memory && layout.initial_bytes > 0 {
                        found.push(layout);
                    }
                }
            }
            _ => {}
        }
    }
    found
}

#[test]
fn every_shop_component_has_a_small_stack_and_room_for_its_heap() {
    let components = shop_components();
    assert!(components.len() >= 10, "spin.toml names the shop's components: {components:?}");
    for path in components {
        let wasm = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (build the components first: scripts/build-components.sh)", path.display()));
        let main = layouts(&wasm)
            .into_iter()
            .max_by_key(|l| l.data_end)
            .unwrap_or_else(|| panic!("{}: no core module defines a memory", path.display()));
        assert_eq!(
            main.stack_pointer,
            Some(wasm_stack::STACK_BYTES as i64),
            "{}: linked without wasm_stack::link() in its build.rs, or built with {} set",
            path.display(),
            wasm_stack::STACK_OVERRIDE_VAR
        );
        let heap = main.initial_bytes.saturating_sub(main.data_end);
        assert!(
            heap >= wasm_stack::HEAP_BYTES as u64,
            "{}: only {heap} bytes of the initial memory are left for the heap",
            path.display()
        );
    }
}
