//! Samples of `nabla`'s output in the documentation are compared with what the code prints, so that
//! they cannot drift: `nabla list` in the getting-started guide, the tour, and the run times in the
//! README's table of experiments. `bench/SPEC.md` is the repository's copy of the benchmark
//! definitions (`/work/shared/BENCHMARKS-SPEC.md` where the shared folder exists): they must agree.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn nabla(args: &[&str], dir: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_nabla"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The ```text block that follows the first line containing `after` in `doc`.
fn text_block_after(doc: &str, after: &str) -> String {
    let start = doc
        .find(after)
        .unwrap_or_else(|| panic!("`{after}` not found"));
    let rest = &doc[start..];
    let open = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let close = rest[open..].find("```").expect("closed");
    rest[open..open + close].to_string()
}

/// Figures that vary from run to run (timings) or machine to machine become `#`.
fn shape(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| {
            let mut out = String::new();
            let mut in_num = false;
            for c in l.chars() {
                if c.is_ascii_digit() || (in_num && c == '.') {
                    if !in_num {
                        out.push('#');
                    }
                    in_num = true;
                } else {
                    in_num = false;
                    out.push(c);
                }
            }
            out.trim_end().to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn getting_started_shows_what_nabla_list_prints() {
    let doc = read("docs/getting-started.md");
    let shown = text_block_after(&doc, "\nnabla list\n```");
    let printed = nabla(&["list"], &repo());
    assert_eq!(
        shown.trim_end(),
        printed.trim_end(),
        "update docs/getting-started.md with `nabla list`'s output"
    );
}

#[test]
fn getting_started_shows_what_the_tour_prints() {
    let doc = read("docs/getting-started.md");
    let shown = text_block_after(&doc, "The tour\nruns each experiment");
    let dir = tempfile::tempdir().unwrap();
    let printed = nabla(&[], dir.path());
    // progress lines are a bar on a terminal and sampled lines otherwise: compare the rest
    let keep = |s: &str| -> Vec<String> {
        shape(s)
            .into_iter()
            .filter(|l| !l.contains(": step #/#"))
            .collect()
    };
    assert_eq!(
        keep(&shown),
        keep(&printed),
        "update the tour in docs/getting-started.md; it prints:\n{printed}"
    );
}

#[test]
fn readme_run_times_are_the_experiments_own() {
    let readme = read("README.md");
    let mut seen = 0;
    for e in nabla_zoo_specs() {
        let (name, runtime) = e;
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} missing from the README's table"));
        let last = row.trim_end_matches('|').rsplit('|').next().unwrap().trim();
        assert_eq!(last, runtime, "README's run time of {name}");
        seen += 1;
    }
    assert!(seen >= 4);
}

fn nabla_zoo_specs() -> Vec<(String, String)> {
    // `nabla list` prints `NAME  SUMMARY  (RUNTIME)`
    nabla(&["list"], &repo())
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let open = l.rfind("  (")?;
            Some((name.to_string(), l[open + 3..l.len() - 1].to_string()))
        })
        .collect()
}

#[test]
fn benchmark_definitions_are_in_the_repository_and_linked_relatively() {
    let ours = read("bench/SPEC.md");
    let shared = Path::new("/work/shared/BENCHMARKS-SPEC.md");
    if shared.is_file() {
        assert_eq!(
            ours,
            std::fs::read_to_string(shared).unwrap(),
            "bench/SPEC.md is out of step with {}",
            shared.display()
        );
    }
    let bench = read("BENCHMARKS.md");
    assert!(
        bench.contains("](bench/SPEC.md)"),
        "BENCHMARKS.md must link bench/SPEC.md"
    );
    assert!(
        !bench.contains("](/work/"),
        "absolute link in BENCHMARKS.md"
    );
}
