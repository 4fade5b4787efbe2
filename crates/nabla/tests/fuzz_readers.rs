//! Fuzzing every file reader of nabla (IDX plain and gzip, `.npy`, CSV, safetensors checkpoints)
//! with mutated valid files: no panic, no hang, no allocation beyond 4× the input's real content
//! (see `fuzz_common`). A short run is part of the test suite; the long run (a million inputs per
//! reader) is `#[ignore]`d:
//!
//! ```sh
//! cargo test -p nabla --test fuzz_readers -- --ignored --nocapture
//! ```
//!
//! Inputs that failed are kept in `target/fuzz-crashes/`; fixed ones become regression files in
//! `tests/fuzz_regressions/` (replayed by `regressions_stay_fixed`).

mod fuzz_common;

use fuzz_common::*;
use nabla::io::checkpoint::{load_checkpoint, save_checkpoint};
use nabla::io::{
    read_digits_csv, read_idx, read_idx_images, read_idx_labels, read_int_csv, read_npy,
    read_npy_array, write_npy,
};
use nabla::nn::Linear;
use nabla::optim::Adam;
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOC: Counting = Counting;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn gunzip(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The repository's IDX files cut to their first `n` items (header count adjusted): valid files
/// small enough to fuzz a million times.
fn idx_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let full = gunzip(&repo().join("data/mnist-sample").join(format!("{name}.gz")));
        let rank = full[3] as usize;
        let header = 4 + 4 * rank;
        let item: usize = (1..rank)
            .map(|d| u32::from_be_bytes(full[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize)
            .product();
        for n in [1usize, 3] {
            let mut v = full[..header].to_vec();
            v[4..8].copy_from_slice(&(n as u32).to_be_bytes());
            v.extend_from_slice(&full[header..header + n * item]);
            seeds.push(v);
        }
    }
    // other element types and ranks, as the format allows
    let mut i32s = vec![0, 0, 0x0C, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    i32s.extend((0..6i32).flat_map(|v| (v - 2).to_be_bytes()));
    seeds.push(i32s);
    let mut f64s = vec![0, 0, 0x0E, 1, 0, 0, 0, 2];
    f64s.extend([1.5f64, -2.0].iter().flat_map(|v| v.to_be_bytes()));
    seeds.push(f64s);
    seeds
}

fn read_idx_all(p: &Path) -> bool {
    let ok = read_idx(p).is_ok();
    let _ = read_idx_images(p);
    let _ = read_idx_labels(p);
    ok
}

fn npy_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    let mut rng = StdRng::seed_from_u64(1);
    for (k, t) in [
        Tensor::randn([3, 2], DType::F32, &mut rng),
        Tensor::randn([4], DType::F64, &mut rng),
        Tensor::randn([2, 1, 2], DType::F32, &mut rng),
        Tensor::scalar(2.5f64),
    ]
    .iter()
    .enumerate()
    {
        let p = dir.path().join(format!("{k}.npy"));
        write_npy(&p, t).unwrap();
        seeds.push(std::fs::read(&p).unwrap());
    }
    // version 3.0 with an integer dtype, as NumPy writes it
    let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
    let mut v3 = b"\x93NUMPY\x03\x00".to_vec();
    let pad = (12 + dict.len() + 1).next_multiple_of(64) - (12 + dict.len() + 1);
    v3.extend(((dict.len() + pad + 1) as u32).to_le_bytes());
    v3.extend(dict.as_bytes());
    v3.extend(std::iter::repeat_n(b' ', pad));
    v3.push(b'\n');
    v3.extend([7i32, -7].iter().flat_map(|v| v.to_le_bytes()));
    seeds.push(v3);
    seeds
}

fn read_npy_all(p: &Path) -> bool {
    let ok = read_npy_array(p).is_ok();
    let _ = read_npy(p);
    ok
}

fn csv_seeds() -> Vec<Vec<u8>> {
    let full = gunzip(&repo().join("data/digits/digits.csv.gz"));
    let text = String::from_utf8(full).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    vec![
        (lines[..3].join("\n") + "\n").into_bytes(),
        (lines[100..110].join("\r\n")).into_bytes(),
        b"1, 2,3\n\n4,5,-6\n".to_vec(),
    ]
}

fn read_csv_all(p: &Path) -> bool {
    let ok = read_int_csv(p).is_ok();
    let _ = read_digits_csv(p);
    ok
}

#[derive(nabla::nn::Module)]
struct Net {
    a: Linear,
    b: Linear,
}

fn net() -> Net {
    let mut rng = StdRng::seed_from_u64(3);
    Net {
        a: Linear::new(3, 4, &mut rng),
        b: Linear::new(4, 2, &mut rng),
    }
}

fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.safetensors");
    let mut m = net();
    let meta = [
        ("step".to_string(), "7".to_string()),
        ("curve.loss".to_string(), "[[1.0,2.0]]".to_string()),
    ]
    .into_iter()
    .collect();
    save_checkpoint(&p, &m, None, &meta).unwrap();
    let a = std::fs::read(&p).unwrap();
    let mut opt = Adam::new(0.1);
    // a step so that the optimiser has moments
    let x = Tensor::ones([1, 3], DType::F32);
    let loss = nabla::nn::Forward::forward(&m.b, &nabla::nn::Forward::forward(&m.a, &x)).sum();
    let g = loss.backward();
    nabla::optim::Optimizer::step(&mut opt, &mut m, &g);
    save_checkpoint(&p, &m, Some(&opt), &meta).unwrap();
    vec![a, std::fs::read(&p).unwrap()]
}

fn read_checkpoint_all(p: &Path) -> bool {
    match load_checkpoint(p) {
        Ok(c) => {
            let mut m = net();
            let mut opt = Adam::new(0.1);
            let _ = c.restore(&mut m, Some(&mut opt));
            let _ = c.restore(&mut net(), None);
            true
        }
        Err(_) => false,
    }
}

type MakeFn = fn(&[u8], &[Vec<u8>], &mut Rng) -> Vec<u8>;

struct Reader {
    name: &'static str,
    file: &'static str,
    seeds: Vec<Vec<u8>>,
    make: MakeFn,
    content: fn(&[u8]) -> usize,
    read: fn(&Path) -> bool,
}

fn readers() -> Vec<Reader> {
    let idx = idx_seeds();
    let idx_gz: Vec<Vec<u8>> = idx.iter().map(|s| gzip(s)).collect();
    let csv = csv_seeds();
    let csv_gz: Vec<Vec<u8>> = csv.iter().map(|s| gzip(s)).collect();
    vec![
        Reader {
            name: "idx",
            file: "x-idx3-ubyte",
            seeds: idx,
            make: plain,
            content: raw_len,
            read: read_idx_all,
        },
        Reader {
            name: "idx-gz",
            file: "x-idx3-ubyte.gz",
            seeds: idx_gz,
            make: gz_aware,
            content: gz_len,
            read: read_idx_all,
        },
        Reader {
            name: "npy",
            file: "x.npy",
            seeds: npy_seeds(),
            make: plain,
            content: raw_len,
            read: read_npy_all,
        },
        Reader {
            name: "csv",
            file: "x.csv",
            seeds: csv,
            make: plain,
            content: raw_len,
            read: read_csv_all,
        },
        Reader {
            name: "csv-gz",
            file: "x.csv.gz",
            seeds: csv_gz,
            make: gz_aware,
            content: gz_len,
            read: read_csv_all,
        },
        Reader {
            name: "checkpoint",
            file: "x.safetensors",
            seeds: checkpoint_seeds(),
            make: plain,
            content: raw_len,
            read: read_checkpoint_all,
        },
    ]
}

fn run_all(n: u64) {
    let mut bad = Vec::new();
    // FUZZ_READER=name runs one reader (to spread a long run over processes)
    let only = std::env::var("FUZZ_READER").ok();
    for r in readers() {
        if only.as_deref().is_some_and(|o| o != r.name) {
            continue;
        }
        let f = fuzz(r.name, r.file, &r.seeds, n, &r.make, &r.content, &r.read);
        println!("fuzz {}: {f}", r.name);
        assert!(
            f.ok >= r.seeds.len() as u64,
            "{}: a seed was refused",
            r.name
        );
        if !f.panics.is_empty() || f.slow > 0 || !f.alloc_violations.is_empty() {
            bad.push(format!(
                "{}: {f}\n  panics: {:?}\n  allocations: {:?}",
                r.name, f.panics, f.alloc_violations
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_reader_survives_a_short_fuzz() {
    run_all(inputs(1500));
}

#[test]
#[ignore = "a million inputs per reader: minutes"]
fn every_reader_survives_a_million_inputs() {
    run_all(inputs(1_000_000));
}

/// Inputs that once broke a reader (kept from fuzzing), replayed through every reader.
#[test]
fn regressions_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let scratch = scratch();
    for e in entries {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        for r in readers() {
            let p = scratch.path().join(r.file);
            std::fs::write(&p, &bytes).unwrap();
            (r.read)(&p);
        }
    }
}
