//! Fuzzing the run configuration reader (`config.json` as `--resume` reads it: UTF-8, JSON, then
//! [`Config::from_json`] against the experiment's spec) with mutated valid configurations of
//! every experiment: no panic, no hang, no allocation beyond 4× the input (see `fuzz_common`).
//! The long run is `#[ignore]`d: `cargo test -p nabla-zoo --test fuzz_config -- --ignored --nocapture`.

#[path = "../../nabla/tests/fuzz_common/mod.rs"]
mod fuzz_common;

use fuzz_common::*;
use nabla_zoo::experiment::Config;
use std::path::Path;

#[global_allocator]
static ALLOC: Counting = Counting;

fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for e in nabla_zoo::registry() {
        let spec = e.spec();
        for quick in [false, true] {
            let c = Config::new(&spec, quick, 3, quick.then_some(10), &[]).unwrap();
            v.push(serde_json::to_vec_pretty(&c.to_json()).unwrap());
        }
    }
    v
}

/// What `nabla run NAME --resume` does with the file (for the experiment it names).
fn read_config(p: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(p) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let Some(exp) = v["experiment"].as_str().and_then(nabla_zoo::find) else {
        return false;
    };
    match Config::from_json(&exp.spec(), &v) {
        Ok(c) => {
            // an accepted config gives values of the right type for every option
            for o in &exp.spec().options {
                match o.kind {
                    nabla_zoo::experiment::OptKind::Int => drop(c.usize(o.name)),
                    nabla_zoo::experiment::OptKind::Float => drop(c.f64(o.name)),
                    nabla_zoo::experiment::OptKind::Str => drop(c.str(o.name)),
                    nabla_zoo::experiment::OptKind::Path => drop(c.path(o.name)),
                }
            }
            true
        }
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "{e}");
            false
        }
    }
}

fn run(n: u64) {
    let s = seeds();
    let f = fuzz(
        "config",
        "config.json",
        &s,
        n,
        &plain,
        &raw_len,
        &read_config,
    );
    println!("fuzz config: {f}");
    assert!(f.ok >= s.len() as u64);
    assert!(
        f.panics.is_empty() && f.slow == 0 && f.alloc_violations.is_empty(),
        "{f}\n{:?}\n{:?}",
        f.panics,
        f.alloc_violations
    );
}

#[test]
fn config_reader_survives_a_short_fuzz() {
    run(inputs(3000));
}

#[test]
#[ignore = "a million inputs: minutes"]
fn config_reader_survives_a_million_inputs() {
    run(inputs(1_000_000));
}
