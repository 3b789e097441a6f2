//! Reading Spin variables from checkout's core code.

/// A Spin variable, or empty when it is unset. Outside a Spin component
/// (the crate's native unit tests) there are no variables: always empty.
pub fn variable(name: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    {
        spin_sdk::variables::get(name).unwrap_or_default()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = name;
        String::new()
    }
}
