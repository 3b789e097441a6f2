fn main() {
    wasm_stack::link();
}
