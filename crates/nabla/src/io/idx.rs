//! The IDX format of MNIST (LeCun et al.): a big-endian header `0x00 0x00 TYPE NDIM`, `NDIM`
//! big-endian `u32` dimensions, then the elements in row-major order, big-endian. Files may be
//! gzipped; that is detected from the content, not the name.

use super::{IoError, Source, times};
use crate::tensor::storage;
use crate::{DType, Tensor};
use rayon::prelude::*;
use std::path::Path;

/// The elements of an IDX file, in their stored type.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Type code `0x08`.
    U8(Vec<u8>),
    /// Type code `0x09`.
    I8(Vec<i8>),
    /// Type code `0x0B`.
    I16(Vec<i16>),
    /// Type code `0x0C`.
    I32(Vec<i32>),
    /// Type code `0x0D`.
    F32(Vec<f32>),
    /// Type code `0x0E`.
    F64(Vec<f64>),
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name (`u8`, `i8`, `i16`, `i32`, `f32`, `f64`).
    pub fn type_name(&self) -> &'static str {
        match self {
            IdxData::U8(_) => "u8",
            IdxData::I8(_) => "i8",
            IdxData::I16(_) => "i16",
            IdxData::I32(_) => "i32",
            IdxData::F32(_) => "f32",
            IdxData::F64(_) => "f64",
        }
    }

    /// Every element as `f64` (exact for all IDX types).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            IdxData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as f64).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            IdxData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            IdxData::F64(v) => v.clone(),
        }
    }

    /// Every element as an integer, or `None` for the float types.
    fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            IdxData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::F32(_) | IdxData::F64(_) => return None,
        })
    }
}

/// The contents of an IDX file: its dimensions and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The dimensions from the header (`[60000, 28, 28]` for MNIST's training images).
    pub dims: Vec<usize>,
    /// The elements.
    pub data: IdxData,
}

impl IdxArray {
    /// The values unchanged (no scaling) as a tensor of `dtype` with shape `dims`.
    pub fn to_tensor(&self, dtype: DType) -> Tensor {
        match (&self.data, dtype) {
            (IdxData::F32(v), DType::F32) => Tensor::from_slice(v, self.dims.clone()),
            (IdxData::U8(v), DType::F32) => Tensor::from_vec(
                v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                self.dims.clone(),
            ),
            _ => Tensor::from_vec(self.data.to_f64_vec(), self.dims.clone()).to_dtype(dtype),
        }
    }
}

fn type_from_code(code: u8) -> Option<(&'static str, usize)> {
    Some(match code {
        0x08 => ("u8", 1),
        0x09 => ("i8", 1),
        0x0B => ("i16", 2),
        0x0C => ("i32", 4),
        0x0D => ("f32", 4),
        0x0E => ("f64", 8),
        _ => return None,
    })
}

/// Reads an IDX file, gzipped or raw (detected from the first bytes).
///
/// Checks the magic number (`0x00 0x00 TYPE NDIM`), the element type (`u8`, `i8`, `i16`, `i32`,
/// `f32`, `f64`), and that exactly as many bytes follow the header as its dimensions require.
///
/// ```
/// use nabla::io::{read_idx, IdxData};
/// # let dir = std::env::temp_dir().join(format!("nabla-idx-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("labels-idx1-ubyte");
/// // magic (u8, 1 dimension), 3 elements, the labels
/// std::fs::write(&path, [0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]).unwrap();
/// let a = read_idx(&path).unwrap();
/// assert_eq!(a.dims, [3]);
/// assert_eq!(a.data, IdxData::U8(vec![7, 2, 1]));
///
/// std::fs::write(&path, [0, 0, 0x08, 1, 0, 0, 0, 5, 7, 2, 1]).unwrap();
/// let err = read_idx(&path).unwrap_err().to_string();
/// assert!(err.ends_with("labels-idx1-ubyte: truncated: header says 5 (5 bytes) but 3 bytes follow"), "{err}");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, IoError> {
    let path = path.as_ref();
    let mut src = Source::open(path)?;
    let what = if src.is_gzip() {
        "gzip-compressed file"
    } else {
        "file"
    };
    let mut magic = [0u8; 4];
    let got = src.read_fully(&mut magic)?;
    if got < 4 {
        return Err(IoError::format(
            path,
            format!("{what} of {got} bytes is too short for an IDX header (4-byte magic number)"),
        ));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(IoError::format(
            path,
            format!(
                "bad magic number {:02x} {:02x} {:02x} {:02x}: not an IDX file (it must start with two zero bytes, then the element type and the number of dimensions)",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let Some((type_name, size)) = type_from_code(magic[2]) else {
        return Err(IoError::format(
            path,
            format!(
                "unknown IDX element type 0x{:02x} (expected 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32 or 0x0E f64)",
                magic[2]
            ),
        ));
    };
    let ndim = magic[3] as usize;
    if ndim == 0 {
        return Err(IoError::format(path, "IDX header declares 0 dimensions"));
    }
    let mut dim_bytes = vec![0u8; 4 * ndim];
    let got = src.read_fully(&mut dim_bytes)?;
    if got < dim_bytes.len() {
        return Err(IoError::format(
            path,
            format!(
                "truncated header: {ndim} dimensions declared ({} bytes) but {got} bytes follow the magic number",
                4 * ndim
            ),
        ));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            IoError::format(path, format!("header dimensions {} overflow", times(&dims)))
        })?;
    let header_len = 4 + 4 * ndim as u64;
    if let (false, Some(len)) = (src.is_gzip(), src.file_len) {
        // Fail before reading (or allocating) anything when the file is too short.
        let left = len.saturating_sub(header_len);
        if left < expected as u64 {
            return Err(truncated(path, &dims, type_name, expected, left));
        }
    }
    let bytes = src.read_up_to(expected as u64)?;
    if bytes.len() < expected {
        return Err(truncated(
            path,
            &dims,
            type_name,
            expected,
            bytes.len() as u64,
        ));
    }
    let extra = src.trailing_bytes()?;
    if extra > 0 {
        let more = if extra >= 1 << 20 {
            "more than 1 MiB".to_string()
        } else {
            format!("{extra} more bytes")
        };
        return Err(IoError::format(
            path,
            format!(
                "header says {} ({expected} bytes) but {more} follow the data",
                times(&dims)
            ),
        ));
    }
    let data = match magic[2] {
        0x08 => IdxData::U8(bytes),
        0x09 => IdxData::I8(bytes.iter().map(|&b| b as i8).collect()),
        0x0B => IdxData::I16(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_be_bytes([c[0], c[1]]))
                .collect(),
        ),
        0x0C => IdxData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        0x0D => IdxData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => IdxData::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
    };
    Ok(IdxArray { dims, data })
}

fn truncated(path: &Path, dims: &[usize], ty: &str, expected: usize, found: u64) -> IoError {
    let ty = if ty == "u8" {
        String::new()
    } else {
        format!(" of {ty}")
    };
    IoError::format(
        path,
        format!(
            "truncated: header says {}{ty} ({expected} bytes) but {found} bytes follow",
            times(dims)
        ),
    )
}

/// Reads an IDX file of images (`u8`, 3 dimensions `[N, rows, cols]`) as an `f32` tensor of that
/// shape with values scaled to `[0, 1]` (divided by 255).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Tensor, IoError> {
    let path = path.as_ref();
    let a = read_idx(path)?;
    if a.dims.len() != 3 {
        return Err(IoError::format(
            path,
            format!(
                "expected images with 3 dimensions (count × rows × cols) but the header has {} ({})",
                a.dims.len(),
                times(&a.dims)
            ),
        ));
    }
    let IdxData::U8(bytes) = a.data else {
        return Err(IoError::format(
            path,
            format!(
                "expected images of unsigned bytes (type 0x08) but the elements are {}",
                a.data.type_name()
            ),
        ));
    };
    // Written straight into the tensor's buffer: MNIST's training set is 188 MB of f32.
    let data = storage::build(bytes.len(), |out: &mut [f32]| {
        out.par_chunks_mut(1 << 16)
            .zip(bytes.par_chunks(1 << 16))
            .for_each(|(o, b)| {
                o.iter_mut()
                    .zip(b)
                    .for_each(|(o, &b)| *o = b as f32 / 255.0)
            });
    });
    Ok(Tensor::from_arc(data, a.dims.into()))
}

/// Reads an IDX file of class labels (one dimension, an integer type, values ≥ 0).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<usize>, IoError> {
    let path = path.as_ref();
    let a = read_idx(path)?;
    if a.dims.len() != 1 {
        return Err(IoError::format(
            path,
            format!(
                "expected labels with 1 dimension but the header has {} ({})",
                a.dims.len(),
                times(&a.dims)
            ),
        ));
    }
    let Some(values) = a.data.to_i64_vec() else {
        return Err(IoError::format(
            path,
            format!(
                "expected integer labels but the elements are {}",
                a.data.type_name()
            ),
        ));
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            usize::try_from(v)
                .map_err(|_| IoError::format(path, format!("label {i} is negative ({v})")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(ty: u8, dims: &[u32]) -> Vec<u8> {
        let mut v = vec![0, 0, ty, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_element_type_round_trips_raw_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(u8, Vec<u8>, IdxData)> = vec![
            (0x08, vec![1, 255], IdxData::U8(vec![1, 255])),
            (0x09, vec![0xff, 5], IdxData::I8(vec![-1, 5])),
            (
                0x0B,
                [(-2i16).to_be_bytes(), 300i16.to_be_bytes()].concat(),
                IdxData::I16(vec![-2, 300]),
            ),
            (
                0x0C,
                [(-7i32).to_be_bytes(), 70000i32.to_be_bytes()].concat(),
                IdxData::I32(vec![-7, 70000]),
            ),
            (
                0x0D,
                [1.5f32.to_be_bytes(), (-0.25f32).to_be_bytes()].concat(),
                IdxData::F32(vec![1.5, -0.25]),
            ),
            (
                0x0E,
                [1e300f64.to_be_bytes(), 2.0f64.to_be_bytes()].concat(),
                IdxData::F64(vec![1e300, 2.0]),
            ),
        ];
        for (ty, payload, want) in cases {
            let mut bytes = header(ty, &[2, 1]);
            bytes.extend(&payload);
            for (name, contents) in [("raw", bytes.clone()), ("gz", gz(&bytes))] {
                let p = dir.path().join(format!("t{ty}.{name}"));
                std::fs::write(&p, contents).unwrap();
                let a = read_idx(&p).unwrap();
                assert_eq!(a.dims, [2, 1]);
                assert_eq!(a.data, want);
            }
        }
    }

    #[test]
    fn labels_and_images_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let mut b = header(0x08, &[2, 1, 2]);
        b.extend([0, 255, 51, 102]);
        std::fs::write(&p, gz(&b)).unwrap();
        let t = read_idx_images(&p).unwrap();
        assert_eq!(t.dims(), &[2, 1, 2]);
        assert_eq!(t.to_vec::<f32>(), vec![0.0, 1.0, 0.2, 0.4]);
        assert!(
            read_idx_labels(&p)
                .unwrap_err()
                .to_string()
                .contains("expected labels with 1 dimension but the header has 3 (2×1×2)")
        );
        let mut b = header(0x09, &[2]);
        b.extend([3, 0xfe]);
        std::fs::write(&p, b).unwrap();
        let e = read_idx_labels(&p).unwrap_err().to_string();
        assert!(e.ends_with("label 1 is negative (-2)"), "{e}");
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("expected images with 3 dimensions"), "{e}");
    }
}
