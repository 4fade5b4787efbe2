//! A small mutation fuzzer for the file readers, on the stable toolchain: seeds are valid files
//! (from the repository, or written by nabla's own writers), mutated by bit flips, byte
//! insertions and deletions, overwritten length fields, truncations, duplicated and spliced
//! chunks. Each input is written to a file and given to the real reader, which must return
//! (`Ok` or `Err`) without panicking, within a second, and without any single allocation larger
//! than 4× the input's real content (its decompressed size for gzip) plus a fixed 64 KiB for
//! buffers whose size does not depend on the input. A counting global allocator measures that.
//!
//! Used by `tests/fuzz_readers.rs` (nabla's readers) and `nabla-zoo/tests/fuzz_config.rs` (the
//! run configuration).

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Counts allocations made by the fuzzing thread while it has [`ON`] set: the largest single
/// one. The flag is per thread because the test harness runs other tests (which allocate freely)
/// on other threads at the same time.
pub struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static MAX_SINGLE: Cell<usize> = const { Cell::new(0) };
}

fn count(size: usize) {
    // `try_with`: during thread teardown the cells may already be gone; nothing is counted then.
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = MAX_SINGLE.try_with(|m| m.set(m.get().max(size)));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations that do not depend on the input (I/O buffers, a decompressor's window).
pub const FIXED_ALLOWANCE: usize = 64 << 10;

/// A deterministic generator (xorshift64*).
pub struct Rng(u64);

/// Builds a fuzz input from a seed file, the other seeds and the random source.
pub type MakeInput = dyn Fn(&[u8], &[Vec<u8>], &mut Rng) -> Vec<u8>;

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    3,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX,
];

const TOKENS: [&[u8]; 16] = [
    b"0",
    b"-1",
    b"9999999999999999999999",
    b",",
    b"\n",
    b"\r\n",
    b"'",
    b"\"",
    b"(",
    b")",
    b"{",
    b"}",
    b"True",
    b"null",
    b"1e308",
    b"\xC3\xA9",
];

/// One mutation of `data` (`others`: seeds to splice from).
fn mutate_once(data: &mut Vec<u8>, others: &[Vec<u8>], r: &mut Rng) {
    let len = data.len();
    match r.below(11) {
        // flip a bit
        0 if len > 0 => {
            let i = r.below(len);
            data[i] ^= 1 << r.below(8);
        }
        // set a byte
        1 if len > 0 => {
            let i = r.below(len);
            data[i] = r.next() as u8;
        }
        // insert random bytes
        2 => {
            let i = r.below(len + 1);
            let n = 1 + r.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
            data.splice(i..i, bytes);
        }
        // delete a range
        3 if len > 0 => {
            let i = r.below(len);
            let n = 1 + r.below((len - i).min(64));
            data.drain(i..i + n);
        }
        // truncate
        4 if len > 0 => data.truncate(r.below(len)),
        // overwrite a length field: 1, 2, 4 or 8 bytes, either byte order, an interesting value
        // or one near the input's length, mostly near the start (where headers are)
        5 | 6 if len > 0 => {
            let w = [1usize, 2, 4, 8][r.below(4)];
            let i = if r.chance(2) {
                r.below(len.min(32))
            } else {
                r.below(len)
            };
            let v = match r.below(4) {
                0 => len as u64,
                1 => (len as u64).wrapping_add(r.below(9) as u64).wrapping_sub(4),
                _ => INTERESTING[r.below(INTERESTING.len())],
            };
            let bytes = if r.chance(2) {
                v.to_le_bytes()
            } else {
                (v << (8 * (8 - w))).to_be_bytes()
            };
            for k in 0..w {
                if i + k < data.len() {
                    data[i + k] = bytes[k];
                }
            }
        }
        // duplicate a chunk
        7 if len > 0 => {
            let i = r.below(len);
            let n = 1 + r.below((len - i).min(256));
            let chunk = data[i..i + n].to_vec();
            let at = r.below(len + 1);
            data.splice(at..at, chunk);
        }
        // splice the tail of another seed
        8 if !others.is_empty() => {
            let o = &others[r.below(others.len())];
            if !o.is_empty() {
                let i = r.below(len + 1);
                let j = r.below(o.len());
                data.truncate(i);
                data.extend_from_slice(&o[j..]);
            }
        }
        // a token that matters to text formats
        _ => {
            let t = TOKENS[r.below(TOKENS.len())];
            let i = r.below(len + 1);
            if r.chance(2) && i < len {
                let end = (i + t.len()).min(len);
                data.splice(i..end, t.iter().copied());
            } else {
                data.splice(i..i, t.iter().copied());
            }
        }
    }
}

/// `seed` with 1 to 4 mutations.
pub fn mutate(seed: &[u8], others: &[Vec<u8>], r: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + r.below(4) {
        mutate_once(&mut d, others, r);
    }
    d
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The decompressed size of gzip `data` (as far as it decodes, capped at `cap`).
pub fn gunzip_len(data: &[u8], cap: u64) -> usize {
    use std::io::Read;
    let mut d = flate2::read::MultiGzDecoder::new(data).take(cap);
    let mut n = 0usize;
    let mut buf = [0u8; 1 << 14];
    loop {
        match d.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k,
        }
    }
}

/// What a fuzzing run found.
#[derive(Debug, Default)]
pub struct Figures {
    pub inputs: u64,
    pub ok: u64,
    pub panics: Vec<(String, PathBuf)>,
    pub slow: u64,
    pub max_time: Duration,
    pub max_alloc: usize,
    /// Largest `allocation / content` over the inputs whose largest allocation exceeded the
    /// fixed allowance.
    pub max_ratio: f64,
    pub alloc_violations: Vec<(usize, usize, PathBuf)>,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inputs ({} accepted), {} panics, {} over 1 s, max time {:.1} ms, largest allocation {} B, max allocation/content {:.2} (above {} KiB), {} allocation violations",
            self.inputs,
            self.ok,
            self.panics.len(),
            self.slow,
            self.max_time.as_secs_f64() * 1e3,
            self.max_alloc,
            self.max_ratio,
            FIXED_ALLOWANCE >> 10,
            self.alloc_violations.len()
        )
    }
}

/// A folder for fuzz inputs: in memory (`/dev/shm`) where there is one.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// Where failing inputs are kept for a regression test.
pub fn crash_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Feeds `n` mutated inputs to `read` (given the file written with the input, returns whether
/// the reader accepted it). `content(input)` is the input's real size (decompressed for gzip).
/// `make(seed, others, rng)` builds an input from a seed (plain mutation, or mutation of the
/// decompressed content then recompression).
pub fn fuzz(
    name: &str,
    file_name: &str,
    seeds: &[Vec<u8>],
    n: u64,
    make: &MakeInput,
    content: &dyn Fn(&[u8]) -> usize,
    read: &dyn Fn(&Path) -> bool,
) -> Figures {
    let dir = scratch();
    let path = dir.path().join(file_name);
    let mut r = Rng::new(0xF022 ^ name.len() as u64 ^ n);
    let mut fig = Figures::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // every seed as it is, then mutations
    for k in 0..n {
        let input = if (k as usize) < seeds.len() {
            seeds[k as usize].clone()
        } else {
            let s = &seeds[r.below(seeds.len())];
            make(s, seeds, &mut r)
        };
        std::fs::write(&path, &input).unwrap();
        let real = content(&input);
        MAX_SINGLE.with(|m| m.set(0));
        ON.with(|on| on.set(true));
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&path)));
        let dt = t.elapsed();
        ON.with(|on| on.set(false));
        let biggest = MAX_SINGLE.with(Cell::get);
        fig.inputs += 1;
        fig.max_time = fig.max_time.max(dt);
        if dt > Duration::from_secs(1) {
            fig.slow += 1;
        }
        fig.max_alloc = fig.max_alloc.max(biggest);
        if biggest > FIXED_ALLOWANCE {
            fig.max_ratio = fig.max_ratio.max(biggest as f64 / real.max(1) as f64);
        }
        let keep = |what: &str| {
            let p = crash_dir().join(format!("{name}-{what}-{k}.bin"));
            std::fs::write(&p, &input).unwrap();
            p
        };
        if biggest > 4 * real + FIXED_ALLOWANCE && fig.alloc_violations.len() < 20 {
            let p = keep("alloc");
            fig.alloc_violations.push((biggest, real, p));
        }
        match result {
            Ok(true) => fig.ok += 1,
            Ok(false) => {}
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if fig.panics.len() < 20 {
                    let p = keep("panic");
                    fig.panics.push((msg, p));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    fig
}

/// Plain byte mutation.
pub fn plain(seed: &[u8], others: &[Vec<u8>], r: &mut Rng) -> Vec<u8> {
    mutate(seed, others, r)
}

/// For gzip seeds: half the time the compressed bytes are mutated, half the time the content
/// is mutated and compressed again (so the reader sees well-formed gzip of malformed content).
pub fn gz_aware(seed: &[u8], others: &[Vec<u8>], r: &mut Rng) -> Vec<u8> {
    if r.chance(2) {
        return mutate(seed, others, r);
    }
    use std::io::Read;
    let mut inner = Vec::new();
    if flate2::read::GzDecoder::new(seed)
        .read_to_end(&mut inner)
        .is_err()
    {
        return mutate(seed, others, r);
    }
    gzip(&mutate(&inner, &[], r))
}

/// The input's own length.
pub fn raw_len(d: &[u8]) -> usize {
    d.len()
}

/// The decompressed length of gzip input (the compressed one when larger or not gzip).
pub fn gz_len(d: &[u8]) -> usize {
    if d.starts_with(&[0x1f, 0x8b]) {
        gunzip_len(d, 1 << 30).max(d.len())
    } else {
        d.len()
    }
}

/// The number of inputs per reader: `FUZZ_INPUTS` when set, else `default`.
pub fn inputs(default: u64) -> u64 {
    std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
