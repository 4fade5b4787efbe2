//! IDX, .npy and CSV readers: good files, and typed errors for bad ones.

use nabla::io::{
    IdxData, IoError, NpyData, read_digits_csv, read_idx, read_idx_images, read_idx_labels,
    read_npy, read_npy_array, write_npy,
};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};
use std::io::Write;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    nabla::data::datasets::bundled_data_dir()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(ty: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(payload);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn format_reason(e: IoError) -> String {
    match e {
        IoError::Format { reason, .. } => reason,
        other => panic!("expected a format error, got {other:?}"),
    }
}

// ----- IDX -----------------------------------------------------------------------------------

#[test]
fn idx_bad_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.idx", b"PK\x03\x04 zip, not idx");
    let e = read_idx(&p).unwrap_err();
    assert!(e.to_string().starts_with(&p.display().to_string()));
    assert!(format_reason(e).starts_with("bad magic number 50 4b 03 04"));
    let p = write(dir.path(), "t.idx", &idx(0x07, &[1], &[0]));
    assert!(format_reason(read_idx(&p).unwrap_err()).starts_with("unknown IDX element type 0x07"));
    let p = write(dir.path(), "z.idx", &idx(0x08, &[], &[]));
    assert_eq!(
        format_reason(read_idx(&p).unwrap_err()),
        "IDX header declares 0 dimensions"
    );
    let p = write(dir.path(), "empty.idx", b"");
    assert!(format_reason(read_idx(&p).unwrap_err()).contains("too short for an IDX header"));
}

#[test]
fn idx_truncated_raw_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let full = idx(0x08, &[60000, 28, 28], &[0u8; 1000]);
    let raw = write(dir.path(), "train-images-idx3-ubyte", &full);
    assert_eq!(
        read_idx(&raw).unwrap_err().to_string(),
        format!(
            "{}: truncated: header says 60000×28×28 (47040000 bytes) but 1000 bytes follow",
            raw.display()
        )
    );
    let zipped = write(dir.path(), "train-images-idx3-ubyte.gz", &gz(&full));
    assert_eq!(
        read_idx(&zipped).unwrap_err().to_string(),
        format!(
            "{}: truncated: header says 60000×28×28 (47040000 bytes) but 1000 bytes follow",
            zipped.display()
        )
    );
    // Elements of 4 bytes: the byte count accounts for the type.
    let p = write(dir.path(), "i32", &idx(0x0C, &[3], &[0; 8]));
    assert!(
        format_reason(read_idx(&p).unwrap_err())
            .ends_with("header says 3 of i32 (12 bytes) but 8 bytes follow")
    );
    // Header cut inside the dimensions.
    let p = write(dir.path(), "hdr", &[0, 0, 8, 3, 0, 0, 1]);
    assert!(format_reason(read_idx(&p).unwrap_err()).starts_with("truncated header: 3 dimensions"));
    // A gzip stream cut short is a format error, not an I/O error.
    let z = gz(&idx(0x08, &[4000], &[7u8; 4000]));
    let p = write(dir.path(), "cut.gz", &z[..z.len() / 2]);
    let e = format_reason(read_idx(&p).unwrap_err());
    assert!(e.contains("gzip") || e.starts_with("truncated"), "{e}");
}

#[test]
fn idx_wrong_dims_and_trailing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long", &idx(0x08, &[2, 2], &[1, 2, 3, 4, 5, 6]));
    assert_eq!(
        format_reason(read_idx(&p).unwrap_err()),
        "header says 2×2 (4 bytes) but 2 more bytes follow the data"
    );
    let p = write(dir.path(), "long.gz", &gz(&idx(0x08, &[3], &[1, 2, 3, 4])));
    assert!(format_reason(read_idx(&p).unwrap_err()).ends_with("but 1 more bytes follow the data"));
    // Labels given where images are expected, and the other way round.
    let p = write(dir.path(), "labels", &idx(0x08, &[3], &[1, 2, 3]));
    assert!(format_reason(read_idx_images(&p).unwrap_err()).starts_with(
        "expected images with 3 dimensions (count × rows × cols) but the header has 1 (3)"
    ));
    let p = write(dir.path(), "f32img", &idx(0x0D, &[1, 1, 1], &[0; 4]));
    assert!(format_reason(read_idx_images(&p).unwrap_err()).contains("the elements are f32"));
    let p = write(dir.path(), "floats", &idx(0x0D, &[1], &[0; 4]));
    assert!(format_reason(read_idx_labels(&p).unwrap_err()).contains("expected integer labels"));
    // An absurd header does not make us allocate: it is just truncated.
    let p = write(
        dir.path(),
        "huge",
        &idx(0x0E, &[u32::MAX, u32::MAX], &[1, 2]),
    );
    let e = format_reason(read_idx(&p).unwrap_err());
    assert!(e.starts_with("truncated") || e.contains("overflow"), "{e}");
}

#[test]
fn idx_missing_file_is_io_error() {
    let e = read_idx("/definitely/not/here-idx1-ubyte.gz").unwrap_err();
    assert!(
        matches!(&e, IoError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(
        e.to_string()
            .starts_with("/definitely/not/here-idx1-ubyte.gz: ")
    );
}

#[test]
fn idx_reads_the_mnist_sample() {
    let dir = data_dir().join("mnist-sample");
    let images = read_idx_images(dir.join("train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(images.dims(), &[1000, 28, 28]);
    let v = images.to_vec::<f32>();
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    assert_eq!(v.iter().cloned().fold(0.0f32, f32::max), 1.0);
    let raw = read_idx(dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(raw.dims, [1000]);
    let IdxData::U8(first) = &raw.data else {
        panic!("labels are u8")
    };
    assert_eq!(first[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
}

// ----- .npy ----------------------------------------------------------------------------------

#[test]
fn npy_round_trips_f32_and_f64_of_many_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let shapes: Vec<Vec<usize>> = vec![
        vec![],
        vec![1],
        vec![7],
        vec![3, 4],
        vec![2, 0, 3],
        vec![2, 3, 4, 5],
    ];
    for dtype in [DType::F32, DType::F64] {
        for shape in &shapes {
            let t = Tensor::randn(shape.clone(), dtype, &mut rng);
            let p = dir.path().join(format!("{dtype}-{}.npy", shape.len()));
            write_npy(&p, &t).unwrap();
            let back = read_npy(&p).unwrap();
            assert_eq!(back.dtype(), dtype);
            assert_eq!(back.dims(), t.dims());
            assert_eq!(back.to_vec::<f64>(), t.to_vec::<f64>(), "{dtype} {shape:?}");
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        }
    }
    // A non-contiguous view is written in logical (C) order.
    let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).t();
    let p = dir.path().join("t.npy");
    write_npy(&p, &t).unwrap();
    assert_eq!(
        read_npy(&p).unwrap().to_vec::<f32>(),
        vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
}

/// A .npy file as NumPy writes it, for a given version, dtype and header dict.
fn npy(version: u8, dict: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    let len_bytes = if version == 1 { 2 } else { 4 };
    let unpadded = 8 + len_bytes + dict.len() + 1;
    let pad = unpadded.next_multiple_of(64) - unpadded;
    let hlen = dict.len() + pad + 1;
    if version == 1 {
        out.extend((hlen as u16).to_le_bytes());
    } else {
        out.extend((hlen as u32).to_le_bytes());
    }
    out.extend(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out.extend(payload);
    out
}

fn dict(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

#[test]
fn npy_reads_versions_and_integer_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let f32s: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    for v in [1, 2, 3] {
        let p = write(dir.path(), "v.npy", &npy(v, &dict("<f4", "(2,)"), &f32s));
        assert_eq!(
            read_npy(&p).unwrap().to_vec::<f32>(),
            vec![1.5, -2.0],
            "v{v}"
        );
    }
    let cases: Vec<(&str, Vec<u8>, NpyData)> = vec![
        ("|u1", vec![0, 255], NpyData::UInt(vec![0, 255])),
        ("|i1", vec![0xff, 3], NpyData::Int(vec![-1, 3])),
        (
            "<u2",
            [7u16, 65535].iter().flat_map(|v| v.to_le_bytes()).collect(),
            NpyData::UInt(vec![7, 65535]),
        ),
        (
            "<i4",
            [-5i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
            NpyData::Int(vec![-5, 9]),
        ),
        (
            "<i8",
            [-(1i64 << 40), 1]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            NpyData::Int(vec![-(1 << 40), 1]),
        ),
        ("|b1", vec![1, 0], NpyData::Bool(vec![true, false])),
    ];
    for (descr, payload, want) in cases {
        let p = write(dir.path(), "i.npy", &npy(1, &dict(descr, "(2,)"), &payload));
        let a = read_npy_array(&p).unwrap();
        assert_eq!(
            (a.shape.as_slice(), &a.data),
            (&[2usize][..], &want),
            "{descr}"
        );
        // Integers become exact f64 tensors.
        let t = read_npy(&p).unwrap();
        assert_eq!(t.dtype(), DType::F64);
    }
    let big: Vec<u8> = [(1i64 << 60) + 1, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let p = write(dir.path(), "big.npy", &npy(1, &dict("<i8", "(2,)"), &big));
    let e = read_npy(&p).unwrap_err().to_string();
    assert!(e.contains("cannot be represented exactly as f64"), "{e}");
    assert!(read_npy_array(&p).is_ok());
}

#[test]
fn npy_rejects_big_endian_fortran_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "be.npy", &npy(1, &dict(">f4", "(1,)"), &[0; 4]));
    let e = read_npy(&p).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }));
    assert!(e.to_string().contains("big-endian dtype '>f4'"), "{e}");

    let fortran = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }";
    let p = write(dir.path(), "f.npy", &npy(1, fortran, &[0; 32]));
    let e = read_npy(&p).unwrap_err().to_string();
    assert!(e.contains("Fortran-ordered array"), "{e}");

    let p = write(dir.path(), "c.npy", &npy(1, &dict("<c8", "(1,)"), &[0; 8]));
    assert!(
        read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("dtype '<c8'")
    );

    let p = write(
        dir.path(),
        "short.npy",
        &npy(1, &dict("<f8", "(3, 4)"), &[0; 50]),
    );
    assert_eq!(
        format_reason(read_npy(&p).unwrap_err()),
        "truncated: header says 3×4 <f8 (96 bytes) but 50 bytes follow"
    );
    let p = write(dir.path(), "long.npy", &npy(1, &dict("<f4", "()"), &[0; 6]));
    assert!(format_reason(read_npy(&p).unwrap_err()).contains("2 more bytes follow"));

    let p = write(dir.path(), "junk.npy", b"hello world, this is text");
    assert!(format_reason(read_npy(&p).unwrap_err()).starts_with("not a .npy file"));

    let p = write(
        dir.path(),
        "hdr.npy",
        &npy(1, "{'descr': '<f4', 'shape': (1,)}", &[0; 4]),
    );
    assert!(format_reason(read_npy(&p).unwrap_err()).contains("no 'fortran_order' key"));

    let p = write(dir.path(), "v9.npy", b"\x93NUMPY\x09\x00\x00\x00");
    assert!(
        read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("version 9.0")
    );
}

#[test]
fn npy_write_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    write_npy(&p, &Tensor::ones([2], DType::F32)).unwrap();
    write_npy(&p, &Tensor::zeros([3], DType::F64)).unwrap();
    assert_eq!(read_npy(&p).unwrap().dims(), &[3]);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    assert!(
        write_npy(
            dir.path().join("missing/a.npy"),
            &Tensor::ones([1], DType::F32)
        )
        .is_err()
    );
}

// ----- CSV -----------------------------------------------------------------------------------

#[test]
fn digits_csv_gzipped_and_plain() {
    let path = data_dir().join("digits/digits.csv.gz");
    let (x, labels) = read_digits_csv(&path).unwrap();
    assert_eq!(x.dims(), &[1797, 64]);
    let mut counts = [0usize; 10];
    labels.iter().for_each(|&l| counts[l] += 1);
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert_eq!(
        x.to_vec::<f32>()[..8],
        [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
    );

    // The same file uncompressed.
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    let plain = write(dir.path(), "digits.csv", &text);
    let (x2, labels2) = read_digits_csv(&plain).unwrap();
    assert_eq!((x2.to_vec::<f32>(), labels2), (x.to_vec::<f32>(), labels));
}

/// NumPy reads what `write_npy` writes, and `read_npy` reads what NumPy writes (versions 1.0 and
/// 2.0, several dtypes, 0-d). Needs a Python with numpy: `NABLA_PYTHON=/path/to/python cargo test
/// -p nabla --test io_formats -- --ignored` (default: `bench/reference/.venv/bin/python`).
#[test]
#[ignore = "needs a Python with numpy"]
fn numpy_interop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("NABLA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/reference/.venv/bin/python"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(
        d.join("from_nabla.npy"),
        &Tensor::arange(0.0, 6.0, 1.0, DType::F64).reshape([2, 3]),
    )
    .unwrap();
    write_npy(d.join("scalar_nabla.npy"), &Tensor::scalar(2.5f32)).unwrap();
    let script = r#"
import sys, numpy as np
from numpy.lib import format as fmt
d = sys.argv[1]
a = np.load(f"{d}/from_nabla.npy")
assert a.dtype == np.float64 and a.shape == (2, 3) and (a.ravel() == np.arange(6)).all(), a
s = np.load(f"{d}/scalar_nabla.npy")
assert s.dtype == np.float32 and s.shape == () and s == 2.5, s
np.save(f"{d}/f4.npy", np.arange(12, dtype="<f4").reshape(3, 4))
np.save(f"{d}/u1.npy", np.array([[0, 255]], dtype=np.uint8))
np.save(f"{d}/i8.npy", np.array(-3, dtype=np.int64))
np.save(f"{d}/b1.npy", np.array([True, False]))
np.save(f"{d}/fortran.npy", np.asfortranarray(np.ones((2, 3))))
np.save(f"{d}/be.npy", np.ones(3, dtype=">f8"))
with open(f"{d}/v2.npy", "wb") as f:
    fmt.write_array(f, np.linspace(0, 1, 5), version=(2, 0))
print("ok")
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(d)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f4 = read_npy(d.join("f4.npy")).unwrap();
    assert_eq!((f4.dtype(), f4.dims()), (DType::F32, &[3usize, 4][..]));
    assert_eq!(f4.to_vec::<f32>()[11], 11.0);
    let u1 = read_npy_array(d.join("u1.npy")).unwrap();
    assert_eq!(
        (u1.descr.as_str(), u1.data),
        ("|u1", NpyData::UInt(vec![0, 255]))
    );
    let i8 = read_npy(d.join("i8.npy")).unwrap();
    assert_eq!((i8.rank(), i8.item()), (0, -3.0));
    assert_eq!(
        read_npy(d.join("b1.npy")).unwrap().to_vec::<f64>(),
        vec![1.0, 0.0]
    );
    assert_eq!(
        read_npy(d.join("v2.npy")).unwrap().to_vec::<f64>(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert!(matches!(
        read_npy(d.join("fortran.npy")),
        Err(IoError::Unsupported { .. })
    ));
    let e = read_npy(d.join("be.npy")).unwrap_err().to_string();
    assert!(e.contains("big-endian dtype '>f8'"), "{e}");
}

#[test]
fn npy_v3_headers_with_multibyte_utf8_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let f32s: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    for descr in ["<é4", "é", "<fé", "é<f4", "<f４", "<\u{10348}8", "€"] {
        let p = write(dir.path(), "u.npy", &npy(3, &dict(descr, "(2,)"), &f32s));
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("dtype"), "{descr}: {e}");
        assert!(read_npy_array(&p).is_err(), "{descr}");
    }
}
