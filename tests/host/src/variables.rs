//! Application variables and `fermyon:spin/variables@2.0.0`.
//!
//! Precedence, highest first: overrides passed through the Rust API (or
//! `--variable`), then `SPIN_VARIABLE_<NAME>` environment variables, then the
//! manifest default. All values are resolved once at load time, so a missing
//! `required` variable or a template naming an unknown variable fails the
//! load (as `spin up` does) instead of failing some later request.
//!
//! A component can only read the variables its `[component.x.variables]`
//! table maps; the values there are templates over application variables.

use crate::bindings::fermyon::spin::variables;
use crate::manifest::VariableDef;
use crate::state::HostState;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};

/// Resolved application variables (`[variables]`).
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    pub fn resolve(
        defs: &BTreeMap<String, VariableDef>,
        overrides: &HashMap<String, String>,
    ) -> Result<AppVariables> {
        for name in overrides.keys() {
            if !defs.contains_key(name) {
                bail!(
                    "variable override `{name}` does not match any application [variables] entry"
                );
            }
        }
        let mut values = HashMap::new();
        for (name, def) in defs {
            validate_name(name).with_context(|| format!("application variable `{name}`"))?;
            if def.required && def.default.is_some() {
                bail!(
                    "application variable `{name}` cannot be both `required` and have a `default`"
                );
            }
            if !def.required && def.default.is_none() {
                bail!("application variable `{name}` needs a `default` or `required = true`");
            }
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| std::env::var(&env_name).ok())
                .or_else(|| def.default.clone());
            match value {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None => bail!(
                    "required application variable `{name}` has no value: set {env_name} or pass \
                     it as an override"
                ),
            }
        }
        Ok(AppVariables { values })
    }

    /// Expands `{{ name }}` references to application variables.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("unterminated `{{{{` in template {template:?}"))?;
            let name = after[..end].trim();
            let value = self.values.get(name).with_context(|| {
                format!("template {template:?} refers to undefined application variable `{name}`")
            })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The variables one component may read, already expanded.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: HashMap<String, String>,
}

impl ComponentVariables {
    pub fn resolve(
        component_id: &str,
        mapping: &BTreeMap<String, String>,
        app: &AppVariables,
    ) -> Result<ComponentVariables> {
        let mut values = HashMap::new();
        for (name, template) in mapping {
            validate_name(name)
                .with_context(|| format!("component `{component_id}` variable `{name}`"))?;
            let value = app
                .expand(template)
                .with_context(|| format!("component `{component_id}` variable `{name}`"))?;
            values.insert(name.clone(), value);
        }
        Ok(ComponentVariables { values })
    }

    fn get(&self, name: &str) -> Result<String, variables::Error> {
        if validate_name(name).is_err() {
            return Err(variables::Error::InvalidName(name.to_string()));
        }
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| variables::Error::Undefined(format!("no variable for {name:?}")))
    }
}

/// Spin variable names: lowercase ASCII letters, digits and `_`, starting
/// with a letter.
fn validate_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("invalid variable name {name:?}: use lowercase letters, digits and `_`");
    }
    Ok(())
}

impl variables::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(self.component.variables.get(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(entries: &[(&str, Option<&str>, bool)]) -> BTreeMap<String, VariableDef> {
        entries
            .iter()
            .map(|(name, default, required)| {
                (
                    name.to_string(),
                    VariableDef {
                        default: default.map(str::to_string),
                        required: *required,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn override_beats_default_and_templates_expand() {
        let defs = defs(&[("a", Some("x"), false), ("b", Some("y"), false)]);
        let overrides = HashMap::from([("b".to_string(), "z".to_string())]);
        let app = AppVariables::resolve(&defs, &overrides).unwrap();
        assert_eq!(app.expand("{{a}}-{{ b }}!").unwrap(), "x-z!");
        assert!(app.expand("{{ nope }}").is_err());
        assert!(app.expand("{{ a").is_err());
    }

    #[test]
    fn required_without_value_fails() {
        let defs = defs(&[("unit_test_required_never_set", None, true)]);
        let err = AppVariables::resolve(&defs, &HashMap::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("SPIN_VARIABLE_UNIT_TEST_REQUIRED_NEVER_SET"),
            "{err}"
        );
    }

    #[test]
    fn component_reads_only_mapped_names() {
        let app =
            AppVariables::resolve(&defs(&[("a", Some("x"), false)]), &HashMap::new()).unwrap();
        let mapping = BTreeMap::from([("mine".to_string(), "v={{ a }}".to_string())]);
        let vars = ComponentVariables::resolve("c", &mapping, &app).unwrap();
        assert_eq!(vars.get("mine").unwrap(), "v=x");
        assert!(matches!(vars.get("a"), Err(variables::Error::Undefined(_))));
        assert!(matches!(
            vars.get("Bad-Name"),
            Err(variables::Error::InvalidName(_))
        ));
    }
}
