//! jq expressions, run by jaq: compiled once when a translator loads, run per body.
//!
//! A value crosses into jaq as JSON text and comes back the same way: jaq keeps large integers
//! and decimal literals as written, so nothing is rounded on the way.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, unwrap_valr, Compiler, Ctx, Vars};
use jaq_json::Val;

use crate::json::Value;

type Data = data::JustLut<Val>;

/// A compiled jq filter.
pub struct Jq {
    filter: jaq_core::Filter<Data>,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jq")
    }
}

impl Jq {
    /// Compiles `code`; the error says where in the expression and what was expected.
    pub fn compile(code: &str) -> Result<Jq, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let at = |s: &str| {
            let offset = (s.as_ptr() as usize).saturating_sub(code.as_ptr() as usize);
            let offset = offset.min(code.len());
            let near: String = code[offset..].chars().take(20).collect();
            if near.is_empty() {
                "at the end".to_owned()
            } else {
                format!("at `{near}`")
            }
        };
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                let mut out = Vec::new();
                for (_, e) in errs {
                    match e {
                        jaq_core::load::Error::Io(v) => {
                            out.extend(v.into_iter().map(|(s, why)| format!("{why} ({})", at(s))))
                        }
                        jaq_core::load::Error::Lex(v) => out.extend(
                            v.into_iter()
                                .map(|(exp, s)| format!("expected {} {}", exp.as_str(), at(s))),
                        ),
                        jaq_core::load::Error::Parse(v) => out.extend(
                            v.into_iter()
                                .map(|(exp, s)| format!("expected {} {}", exp.as_str(), at(s))),
                        ),
                    }
                }
                format!("jq: {}", out.join("; "))
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let out: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_, v)| v)
                    .map(|(s, undefined)| format!("undefined {} `{s}`", undefined.as_str()))
                    .collect();
                format!("jq: {}", out.join("; "))
            })?;
        Ok(Jq { filter })
    }

    /// Runs the filter on `input`; its first output is the result (none is an error).
    pub fn run(&self, input: &Value) -> Result<Value, String> {
        let text = input.to_json();
        let val = jaq_json::read::parse_single(text.as_bytes())
            .map_err(|e| format!("jq could not read its input: {e:?}"))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, val)).map(unwrap_valr);
        match out.next() {
            Some(Ok(v)) => {
                let text = v.to_string();
                Value::parse(text.as_bytes())
                    .map_err(|e| format!("jq produced something that is not JSON ({e})"))
            }
            Some(Err(e)) => Err(format!("jq failed: {e}")),
            None => Err("jq produced no output (e.g. `empty` or a failed `select`)".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests;
