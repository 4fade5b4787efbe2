//! Meta-learning experiments: quick modes (exactly what `--quick` ships) must learn; full runs that
//! check the figures are `#[ignore]`d (`cargo test --release -p nabla-zoo --test
//! meta_learning -- --ignored`).

use nabla_zoo::experiment::{Config, Silent};

fn run(name: &str, quick: bool) -> serde_json::Map<String, serde_json::Value> {
    let exp = nabla_zoo::find(name).expect("registered");
    let cfg = Config::new(&exp.spec(), quick, 0, None, &[]).unwrap();
    let report = exp.run(&cfg, &mut Silent).unwrap();
    assert!(!report.summary.is_empty() && !report.curves.is_empty());
    report.metrics.into_iter().collect()
}

fn metric(m: &serde_json::Map<String, serde_json::Value>, k: &str) -> f64 {
    m[k].as_f64().unwrap_or_else(|| panic!("{k} missing"))
}

#[test]
fn hypergrad_quick_improves_on_its_start_and_is_deterministic() {
    let m = run("hypergrad", true);
    let learned = metric(&m, "val_loss_learned");
    assert!(learned < 0.5 * metric(&m, "val_loss_initial"), "{m:?}");
    assert!(learned < 1.2 * metric(&m, "val_loss_grid_best"), "{m:?}");
    assert_eq!(m, run("hypergrad", true));
}

#[test]
fn maml_sine_quick_adapts() {
    let m = run("maml-sine", true);
    // one step of adaptation helps, and MAML's initialisation adapts better than pretraining's
    let (one, none) = (metric(&m, "mse_5shot"), metric(&m, "mse_5shot_0steps"));
    assert!(one < 0.9 * none, "{m:?}");
    assert!(metric(&m, "mse_5shot_10steps") < one, "{m:?}");
    assert!(one < metric(&m, "mse_5shot_pretrained"), "{m:?}");
}

#[test]
#[ignore = "full run, seconds in release"]
fn hypergrad_reaches_the_grid_search_best_within_5_percent() {
    let m = run("hypergrad", false);
    println!("hypergrad {m:?}");
    assert!(
        metric(&m, "val_loss_learned") <= 1.05 * metric(&m, "val_loss_grid_best"),
        "{m:?}"
    );
}

#[test]
#[ignore = "full run, minutes in release"]
fn maml_sine_reaches_the_paper_figures() {
    let m = run("maml-sine", false);
    println!("maml-sine {m:?}");
    assert!(metric(&m, "mse_5shot") <= 0.7, "{m:?}");
    assert!(metric(&m, "mse_5shot_10steps") <= 0.45, "{m:?}");
    assert!(
        metric(&m, "mse_5shot_pretrained") > 2.0 * metric(&m, "mse_5shot"),
        "{m:?}"
    );
}

#[test]
#[ignore = "timing: run with --ignored --nocapture to see the wall-time speedup of the compiled engine"]
fn hypergrad_compiled_engine_speedup() {
    // the default run in both engines, one after the other in one process; the figures agree
    let exp = nabla_zoo::find("hypergrad").expect("registered");
    let time = |engine: &str| {
        let o = [("engine".to_string(), engine.to_string())];
        let cfg = Config::new(&exp.spec(), false, 0, None, &o).unwrap();
        let t = std::time::Instant::now();
        let r = exp.run(&cfg, &mut Silent).unwrap();
        (t.elapsed().as_secs_f64(), r)
    };
    let (te, re) = time("eager");
    let (tc, rc) = time("compiled");
    println!(
        "hypergrad: eager {te:.2} s, compiled {tc:.2} s, speedup {:.2}x",
        te / tc
    );
    println!("eager: {:?}\ncompiled: {:?}", re.summary, rc.summary);
    let (a, b) = (
        metric(&re.metrics.into_iter().collect(), "val_loss_learned"),
        metric(&rc.metrics.into_iter().collect(), "val_loss_learned"),
    );
    assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
}
