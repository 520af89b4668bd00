//! `strangler translators test`, and the translators the binary knows: the Rust translators it
//! registers and the check the catalog runs on every translator it is given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strangler_anti_corruption::{contract, Compiled, Registry, SpecError};

/// The Rust translators a spec can name with `rust = "NAME"`.
pub fn registry() -> Registry {
    Registry::new()
}

/// Compiles a translator's spec, as the catalog and the facade will.
pub fn check(text: &str) -> Result<(), SpecError> {
    Compiled::compile(text, &registry()).map(|_| ())
}

/// The check the catalog runs on every translator it is given: the spec must compile (an
/// error names its line and reason). The store is built with it.
#[derive(Debug, Clone, Copy)]
pub struct Check;

impl strangler_catalog::TranslatorCheck for Check {
    fn check(&self, text: &str) -> Result<(), String> {
        check(text).map_err(|e| e.to_string())
    }
}

/// The translators in `dir`: every `NAME.toml` except the `NAME.tests.toml` fixtures.
fn translators_in(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".toml") {
            if !stem.ends_with(".tests") {
                out.push((stem.to_owned(), path.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs every translator's examples (or one context's); prints a report. Exit 0 when all
/// pass, 1 when one fails or has no examples, 2 when there is nothing to test.
pub fn test(dir: &Path, context: Option<&str>) -> ExitCode {
    let all = match translators_in(dir) {
        Ok(all) => all,
        Err(e) => {
            eprintln!(
                "error: cannot read the translators directory `{}`: {e}; pass --dir",
                dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| context.is_none_or(|c| c == name))
        .collect();
    if chosen.is_empty() {
        match context {
            Some(c) => eprintln!("error: no translator `{c}.toml` in `{}`", dir.display()),
            None => eprintln!("error: no translators (NAME.toml) in `{}`", dir.display()),
        }
        return ExitCode::from(2);
    }
    let registry = registry();
    let (mut passed, mut failed) = (0usize, 0usize);
    for (name, path) in chosen {
        let fail = |failed: &mut usize, why: String| {
            println!("  FAIL  {name}: {why}");
            *failed += 1;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                fail(&mut failed, format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let translator = match Compiled::compile(&text, &registry) {
            Ok(t) => t,
            Err(e) => {
                fail(
                    &mut failed,
                    format!("{}:{}: {}", path.display(), e.line, e.message),
                );
                continue;
            }
        };
        let fixtures = dir.join(format!("{name}.tests.toml"));
        let examples = match std::fs::read_to_string(&fixtures) {
            Ok(t) => t,
            Err(_) => {
                fail(
                    &mut failed,
                    format!(
                        "no examples: write request and response pairs in {}",
                        fixtures.display()
                    ),
                );
                continue;
            }
        };
        match contract::run(&translator, &examples) {
            Ok(outcomes) => {
                let (text, _) = contract::report(&name, &outcomes);
                print!("{text}");
                for o in &outcomes {
                    if o.passed() {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                }
                if outcomes.is_empty() {
                    fail(
                        &mut failed,
                        format!("{} has no examples", fixtures.display()),
                    );
                }
            }
            Err(e) => fail(
                &mut failed,
                format!("{}:{}: {}", fixtures.display(), e.line, e.message),
            ),
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
