//! The variable table a config is evaluated against.

use std::collections::{BTreeMap, BTreeSet};

/// Variables known while evaluating: name -> value, plus whether exported.
///
/// As in bash, the export mark belongs to the name, not the value: `export A`
/// before `A=1` exports A, assigning keeps the mark, and `unset` drops both.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: BTreeMap<String, String>,
    exported: BTreeSet<String>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    /// All process environment variables, marked exported. Names or values
    /// that are not UTF-8 are converted lossily.
    pub fn from_env() -> Self {
        let mut vars = Self::new();
        for (name, value) in std::env::vars_os() {
            let name = name.to_string_lossy();
            vars.set(&name, value.to_string_lossy());
            vars.export(&name);
        }
        vars
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(name.to_string(), value.into());
    }

    pub fn unset(&mut self, name: &str) {
        self.values.remove(name);
        self.exported.remove(name);
    }

    pub fn export(&mut self, name: &str) {
        self.exported.insert(name.to_string());
    }

    pub fn is_exported(&self, name: &str) -> bool {
        self.exported.contains(name)
    }

    /// Exported variables that have a value, by name.
    pub fn exported(&self) -> impl Iterator<Item = (&str, &str)> {
        self.exported
            .iter()
            .filter_map(|name| Some((name.as_str(), self.get(name)?)))
    }
}
