//! Meta-learning experiments: quick modes (exactly what `--quick` ships) must learn; full runs that
//! check the figures are `#[ignore]`d (`cargo test --release -p nabla-zoo --test
//! meta_learning -- --ignored`).

mod common;

use common::{Metrics, metric, metrics};

fn run(name: &str, quick: bool) -> Metrics {
    common::run(name, quick, 0, &[])
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
    let time = |engine: &str| {
        let t = std::time::Instant::now();
        let r = common::try_run("hypergrad", false, 0, None, &[("engine", engine)]).unwrap();
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
        metric(&metrics(re), "val_loss_learned"),
        metric(&metrics(rc), "val_loss_learned"),
    );
    assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
}
