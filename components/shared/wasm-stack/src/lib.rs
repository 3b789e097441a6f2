//! The wasm stack size and initial heap every shop component is linked
//! with, set from each component's `build.rs` (`wasm_stack::link()`).
//!
//! Why: wasm-ld puts the stack first in linear memory, below the data, and
//! Spin runs each request in a fresh instance from wasmtime's pooling
//! allocator, which on the way out zeroes (or copies back from the image)
//! the first `linear_memory_keep_resident` bytes of every memory the
//! instance had — 2 MiB under Spin, whether the guest touched them or not.
//! With Rust's default 1 MiB stack that is 1 MiB of `memset` per memory per
//! request: most of the reset, the largest single host cost of a catalog
//! read, and twice over for a component with a composed dependency (the
//! cart). See README, "Benchmarks".
//!
//! [`STACK_BYTES`] is four times the stack the whole API suite needs:
//! built with 16 KiB (`SHOP_WASM_STACK_BYTES=16384`, below), every
//! component passes it, the hostile-input tests' deeply nested JSON and the
//! contracts composed into other components included. Of the requests it
//! makes, the deepest (an order's status change) used 12 KiB of its HTTP
//! component's stack, read off the stack (zeroed before each request) by a
//! probe at the end of the request. An overflow cannot corrupt data:
//! the stack grows down towards address 0, so running off its end traps
//! and the request fails with a 500. See README, "Benchmarks".
//!
//! [`HEAP_BYTES`]: wasm-ld sizes the initial memory to the stack plus the
//! data, rounded up to a page, so what is left for the heap is whatever the
//! rounding leaves: 3 KiB in the catalog, which therefore grew its memory on
//! every read. A grown memory costs the host two `mprotect`s per request:
//! one to open the new page, one when the slot is handed to the next
//! instance, which starts at the initial size again, and that second one
//! interrupts the other cores to flush their TLBs. Linking with a heap of
//! its own keeps the hot requests inside the initial memory. See README,
//! "Benchmarks".
//!
//! Only wasm builds get the flags; a native build of the same crate (its
//! unit tests) is linked as usual.

/// The stack size in bytes (a multiple of the 64 KiB wasm page).
pub const STACK_BYTES: u32 = 64 * 1024;

/// Build-time override of [`STACK_BYTES`], for measuring how much stack the
/// components need: `SHOP_WASM_STACK_BYTES=16384 scripts/build-components.sh`,
/// then run the API tests (`cargo test -p api-tests`). Any multiple of 16;
/// below a page the data is no longer page-aligned, so such a build is for
/// that measurement only (the host's layout test refuses it).
pub const STACK_OVERRIDE_VAR: &str = "SHOP_WASM_STACK_BYTES";

/// The heap the initial memory holds beyond the stack and the data
/// (wasm-ld's `--initial-heap`). 64 KiB covers every hot request measured
/// (the catalog's cached reads needed up to one page more than its 3 KiB);
/// more is not free: the pool zeroes the whole initial memory after every
/// request (up to `linear_memory_keep_resident`), touched or not.
pub const HEAP_BYTES: u32 = 64 * 1024;

/// Print the linker arguments for the crate whose build script calls this.
pub fn link() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={STACK_OVERRIDE_VAR}");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        let stack = match std::env::var(STACK_OVERRIDE_VAR) {
            Ok(v) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 16 && n % 16 == 0 => n,
                _ => panic!("{STACK_OVERRIDE_VAR}={v}: give a number of bytes, a multiple of 16"),
            },
            Err(_) => STACK_BYTES,
        };
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={stack}");
        println!("cargo:rustc-link-arg-cdylib=--initial-heap={HEAP_BYTES}");
    }
}

// wasm-ld rounds the stack to its 16-byte alignment only; a whole number of
// 64 KiB pages keeps the data (and so the memory image) page-aligned.
const _: () = assert!(STACK_BYTES % (64 * 1024) == 0);
