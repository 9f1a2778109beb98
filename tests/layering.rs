//! The layering of the library (issue 13): `src/dtp/` is the protocol layer
//! (manifest, server, client) and can be used on its own. It must import
//! nothing of the dsync home layer (`manager/`) or of ftpsync mode
//! (`ftpsync/`): `manager/dtp_host/` runs the DTP host from the home, never
//! the other way round.
//!
//! Read from this repository's own sources: every `src/dtp/**/*.rs`, code and
//! comments alike, for a path into those modules in any spelling a `use` or an
//! expression can take (`crate::manager`, `super::super::manager`,
//! `crate::{manager, …}`, `dsync::manager`).

use std::fs;
use std::path::{Path, PathBuf};

/// The layers `src/dtp/` must not reach.
const ABOVE: &[&str] = &["manager", "ftpsync"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every place in `text` that names one of [`ABOVE`] by a path: (1-based
/// line, what was found).
fn violations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    for prefix in ["crate::", "super::", "dsync::"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            // `crate::{exit, manager::home}` and the like, over several lines too.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => {
                    let mut depth = 1;
                    let end = group
                        .char_indices()
                        .find(|&(_, c)| {
                            match c {
                                '{' => depth += 1,
                                '}' => depth -= 1,
                                _ => {}
                            }
                            depth == 0
                        })
                        .map_or(group.len(), |(i, _)| i);
                    group[..end].split(',').map(str::trim).collect()
                }
                None => vec![rest],
            };
            for name in names {
                for layer in ABOVE {
                    let follows = name
                        .strip_prefix(layer)
                        .and_then(|after| after.chars().next());
                    if name.starts_with(layer)
                        && follows.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                    {
                        let shown: String = format!("{prefix}{rest}")
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(80)
                            .collect();
                        found.push((line_of(at), shown));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn the_protocol_layer_imports_nothing_of_the_layers_above() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/dtp"), &mut files);
    assert!(
        files.len() > 20 && files.iter().any(|f| f.ends_with("server/mod.rs")),
        "src/dtp/ not found as expected: {files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for (line, what) in violations(&text) {
            problems.push(format!(
                "{}:{line}: `{what}`",
                file.strip_prefix(root).unwrap_or(file).display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "src/dtp/ is the protocol layer and must not use manager/ or ftpsync/ \
         (move what needs the dsync home to src/manager/dtp_host/, or hand it in as a value):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_finds_every_spelling() {
    let text = "use crate::manager::home::Home;\n\
                use super::super::manager::xync;\n\
                use crate::{\n    exit,\n    ftpsync::Config,\n};\n\
                let x = crate::ftpsync::run();\n\
                use crate::diag::Diagnostic;\n\
                use crate::managerial;\n\
                use super::{config, list};\n";
    let lines: Vec<usize> = violations(text).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, [1, 2, 3, 7]);
}
