//! NumPy's `.npy` format, versions 1.0, 2.0 and 3.0: the magic string `\x93NUMPY`, the version, the
//! header length (2 bytes in 1.0, 4 bytes after), a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces, then the data.

use super::{IoError, Source, atomic_write, times};
use crate::tensor::cpu::with_dtype;
use crate::{DType, Tensor};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The elements of a `.npy` file, widened to one type per kind.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `f4`.
    F32(Vec<f32>),
    /// `f8`.
    F64(Vec<f64>),
    /// Signed integers `i1`, `i2`, `i4`, `i8`.
    Int(Vec<i64>),
    /// Unsigned integers `u1`, `u2`, `u4`, `u8`.
    UInt(Vec<u64>),
    /// Booleans `b1`.
    Bool(Vec<bool>),
}

/// The contents of a `.npy` file: its shape, its NumPy dtype string, and its elements in row-major
/// (C) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape (`[]` for a 0-d array).
    pub shape: Vec<usize>,
    /// The dtype as written in the file (`<f4`, `|u1`, …).
    pub descr: String,
    /// The elements.
    pub data: NpyData,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float,
    Int,
    UInt,
    Bool,
}

/// Reads a `.npy` file as a tensor.
///
/// - `<f4` gives an `f32` tensor and `<f8` an `f64` tensor, bit for bit.
/// - Integer (`i1`…`i8`, `u1`…`u8`) and boolean arrays give an `f64` tensor: nabla computes in floats,
///   and every 8-, 16- and 32-bit integer is exact in `f64`. A 64-bit value that `f64` cannot hold
///   exactly (some beyond ±2⁵³) is an error rather than a silent rounding; read such files with
///   [`read_npy_array`].
/// - Big-endian data, Fortran order, `f2`, complex, structured and object arrays are rejected with
///   [`IoError::Unsupported`], which says how to convert the array in NumPy.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor, IoError> {
    let path = path.as_ref();
    let a = read_npy_array(path)?;
    let shape = a.shape;
    Ok(match a.data {
        NpyData::F32(v) => Tensor::from_vec(v, shape),
        NpyData::F64(v) => Tensor::from_vec(v, shape),
        NpyData::Int(v) => {
            let mut out = Vec::with_capacity(v.len());
            for (i, &x) in v.iter().enumerate() {
                let f = x as f64;
                if f as i128 != x as i128 {
                    return Err(inexact(path, &a.descr, x, i));
                }
                out.push(f);
            }
            Tensor::from_vec(out, shape)
        }
        NpyData::UInt(v) => {
            let mut out = Vec::with_capacity(v.len());
            for (i, &x) in v.iter().enumerate() {
                if (x as f64) as u128 != x as u128 {
                    return Err(inexact(path, &a.descr, x, i));
                }
                out.push(x as f64);
            }
            Tensor::from_vec(out, shape)
        }
        NpyData::Bool(v) => Tensor::from_vec(
            v.iter()
                .map(|&b| if b { 1.0 } else { 0.0 })
                .collect::<Vec<f64>>(),
            shape,
        ),
    })
}

fn inexact(path: &Path, descr: &str, x: impl std::fmt::Display, i: usize) -> IoError {
    IoError::unsupported(
        path,
        format!(
            "{descr} element {i} = {x} cannot be represented exactly as f64 (use read_npy_array for 64-bit integers)"
        ),
    )
}

/// Reads a `.npy` file into its elements, keeping integers as integers (see [`read_npy`] for what
/// is supported).
pub fn read_npy_array(path: impl AsRef<Path>) -> Result<NpyArray, IoError> {
    let path = path.as_ref();
    let mut src = Source::open(path)?;
    if src.is_gzip() {
        return Err(IoError::unsupported(
            path,
            "gzip-compressed .npy (decompress it first)",
        ));
    }
    let mut pre = [0u8; 8];
    let got = src.read_fully(&mut pre)?;
    if got < 8 || &pre[..6] != MAGIC {
        return Err(IoError::format(
            path,
            "not a .npy file (it must start with \\x93NUMPY and a version)",
        ));
    }
    let (major, minor) = (pre[6], pre[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => {
            return Err(IoError::unsupported(
                path,
                format!(".npy format version {major}.{minor} (1.0, 2.0 and 3.0 are supported)"),
            ));
        }
    };
    let mut lb = [0u8; 4];
    if src.read_fully(&mut lb[..len_bytes])? < len_bytes {
        return Err(IoError::format(path, "truncated .npy preamble"));
    }
    let header_len = u32::from_le_bytes(lb) as usize;
    let preamble = 8 + len_bytes;
    if let Some(len) = src.file_len
        && (len as usize) < preamble + header_len
    {
        return Err(IoError::format(
            path,
            format!(
                "truncated header: it should be {header_len} bytes but the file ends after {}",
                (len as usize).saturating_sub(preamble)
            ),
        ));
    }
    let header = src.read_up_to(header_len as u64)?;
    if header.len() < header_len {
        return Err(IoError::format(
            path,
            format!(
                "truncated header: it should be {header_len} bytes but the file ends after {}",
                header.len()
            ),
        ));
    }
    let header = if major == 3 {
        String::from_utf8(header).map_err(|_| IoError::format(path, "header is not UTF-8"))?
    } else {
        if !header.is_ascii() {
            return Err(IoError::format(
                path,
                format!("header of a version {major}.{minor} file is not ASCII"),
            ));
        }
        String::from_utf8(header).expect("ASCII")
    };
    let h = parse_header(&header)
        .map_err(|e| IoError::format(path, format!("bad header {}: {e}", header.trim_end())))?;
    if h.fortran_order {
        return Err(IoError::unsupported(
            path,
            "Fortran-ordered array (save it with np.save(path, np.ascontiguousarray(a)))",
        ));
    }
    let (kind, size) = parse_descr(&h.descr).map_err(|e| IoError::unsupported(path, e))?;
    let numel = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| IoError::format(path, format!("shape {:?} overflows", h.shape)))?;
    let expected = numel
        .checked_mul(size)
        .ok_or_else(|| IoError::format(path, format!("shape {:?} overflows", h.shape)))?;
    let truncated = |found: u64| {
        IoError::format(
            path,
            format!(
                "truncated: header says {} {} ({expected} bytes) but {found} bytes follow",
                times(&h.shape),
                h.descr
            ),
        )
    };
    if let Some(len) = src.file_len {
        let left = len.saturating_sub((preamble + header_len) as u64);
        if left < expected as u64 {
            return Err(truncated(left));
        }
    }
    let bytes = src.read_up_to(expected as u64)?;
    if bytes.len() < expected {
        return Err(truncated(bytes.len() as u64));
    }
    let extra = src.trailing_bytes()?;
    if extra > 0 {
        return Err(IoError::format(
            path,
            format!(
                "header says {} {} ({expected} bytes) but {extra} more bytes follow the data",
                times(&h.shape),
                h.descr
            ),
        ));
    }
    let data = decode(&bytes, kind, size).map_err(|e| IoError::format(path, e))?;
    Ok(NpyArray {
        shape: h.shape,
        descr: h.descr,
        data,
    })
}

fn decode(b: &[u8], kind: Kind, size: usize) -> Result<NpyData, String> {
    fn le<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        b.chunks_exact(N).map(|c| c.try_into().expect("chunk"))
    }
    Ok(match (kind, size) {
        (Kind::Float, 4) => NpyData::F32(le::<4>(b).map(f32::from_le_bytes).collect()),
        (Kind::Float, 8) => NpyData::F64(le::<8>(b).map(f64::from_le_bytes).collect()),
        (Kind::Int, 1) => NpyData::Int(b.iter().map(|&x| x as i8 as i64).collect()),
        (Kind::Int, 2) => NpyData::Int(le::<2>(b).map(|c| i16::from_le_bytes(c) as i64).collect()),
        (Kind::Int, 4) => NpyData::Int(le::<4>(b).map(|c| i32::from_le_bytes(c) as i64).collect()),
        (Kind::Int, 8) => NpyData::Int(le::<8>(b).map(i64::from_le_bytes).collect()),
        (Kind::UInt, 1) => NpyData::UInt(b.iter().map(|&x| x as u64).collect()),
        (Kind::UInt, 2) => {
            NpyData::UInt(le::<2>(b).map(|c| u16::from_le_bytes(c) as u64).collect())
        }
        (Kind::UInt, 4) => {
            NpyData::UInt(le::<4>(b).map(|c| u32::from_le_bytes(c) as u64).collect())
        }
        (Kind::UInt, 8) => NpyData::UInt(le::<8>(b).map(u64::from_le_bytes).collect()),
        (Kind::Bool, 1) => {
            let mut v = Vec::with_capacity(b.len());
            for (i, &x) in b.iter().enumerate() {
                match x {
                    0 => v.push(false),
                    1 => v.push(true),
                    _ => return Err(format!("boolean element {i} is {x}, not 0 or 1")),
                }
            }
            NpyData::Bool(v)
        }
        _ => unreachable!("parse_descr accepts only these"),
    })
}

/// `(kind, size)` of a supported dtype string, or why it is not supported.
fn parse_descr(d: &str) -> Result<(Kind, usize), String> {
    // By characters, not bytes: a version 3.0 header may hold any UTF-8.
    let mut chars = d.chars();
    let order = chars.next().unwrap_or(' ');
    let kind_ch = chars.next().unwrap_or(' ');
    let size: usize = chars
        .as_str()
        .parse()
        .map_err(|_| format!("dtype '{d}' (supported: <f4 <f8 <i1..<i8 |u1 <u2..<u8 |b1)"))?;
    let kind = match kind_ch {
        'f' if size == 4 || size == 8 => Kind::Float,
        'f' if size == 2 => {
            return Err(format!(
                "half-precision dtype '{d}' (convert it with a.astype(np.float32))"
            ));
        }
        'i' if [1, 2, 4, 8].contains(&size) => Kind::Int,
        'u' if [1, 2, 4, 8].contains(&size) => Kind::UInt,
        'b' if size == 1 => Kind::Bool,
        _ => {
            return Err(format!(
                "dtype '{d}' (supported: <f4 <f8 <i1..<i8 |u1 <u2..<u8 |b1)"
            ));
        }
    };
    let little = cfg!(target_endian = "little");
    match order {
        '<' => {}
        '|' if size == 1 => {}
        '=' if little => {}
        '>' if size == 1 => {}
        '>' | '=' => {
            return Err(format!(
                "big-endian dtype '{d}' (convert it with a.astype(a.dtype.newbyteorder('<')))"
            ));
        }
        _ => return Err(format!("dtype '{d}' has no valid byte order (<, > or |)")),
    }
    Ok((kind, size))
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header's dict literal: exactly the keys `descr` (a string), `fortran_order` (`True`
/// or `False`) and `shape` (a tuple of integers).
fn parse_header(s: &str) -> Result<Header, String> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err("structured dtypes are not supported".into());
                }
                descr = Some(p.string()?)
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("text after the dict".into());
    }
    Ok(Header {
        descr: descr.ok_or("no 'descr' key")?,
        fortran_order: fortran.ok_or("no 'fortran_order' key")?,
        shape: shape.ok_or("no 'shape' key")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(v);
            }
            if c == b'\\' {
                return Err("escapes in strings are not supported".into());
            }
            self.i += 1;
        }
        Err("unterminated string".into())
    }
    fn boolean(&mut self) -> Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(v);
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            // Python 2 wrote long integers as `3L`.
            let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits");
            let _ = self.eat(b'L');
            v.push(
                digits
                    .parse()
                    .map_err(|_| format!("expected a dimension at byte {start}"))?,
            );
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(v);
            }
        }
    }
}

/// The header dict for a C-ordered array, padded so that the data starts at a multiple of 64
/// bytes (as NumPy does), with the version it needs.
fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let build = |len_bytes: usize, version: u8| {
        let unpadded = 6 + 2 + len_bytes + dict.len() + 1;
        let pad = unpadded.next_multiple_of(64) - unpadded;
        let hlen = dict.len() + pad + 1;
        let mut out = Vec::with_capacity(unpadded + pad);
        out.extend_from_slice(MAGIC);
        out.extend([version, 0]);
        if len_bytes == 2 {
            out.extend((hlen as u16).to_le_bytes());
        } else {
            out.extend((hlen as u32).to_le_bytes());
        }
        out.extend(dict.as_bytes());
        out.extend(std::iter::repeat_n(b' ', pad));
        out.push(b'\n');
        (out, hlen)
    };
    let (v1, hlen) = build(2, 1);
    if hlen <= u16::MAX as usize {
        v1
    } else {
        build(4, 2).0
    }
}

/// Writes a tensor as a `.npy` file (`<f4` or `<f8`, C order; format 1.0, or 2.0 for a header
/// beyond 64 KiB), atomically (see [`atomic_write`]). The file reads back with `numpy.load`.
pub fn write_npy(path: impl AsRef<Path>, tensor: &Tensor) -> Result<(), IoError> {
    let descr = match tensor.dtype() {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    };
    let header = header_bytes(descr, tensor.dims());
    atomic_write(path, |w| {
        w.write_all(&header)?;
        with_dtype!(tensor.dtype(), {
            let data = tensor.contiguous_data::<T>();
            let mut buf = Vec::with_capacity(1 << 16);
            for chunk in data.chunks(1 << 13) {
                buf.clear();
                for v in chunk {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
                w.write_all(&buf)?;
            }
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parser_accepts_numpy_variants() {
        let h = parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }  \n")
            .unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("<f8", false, vec![3, 4])
        );
        let h = parse_header("{\"shape\":(5L,),\"fortran_order\":True,\"descr\":\"|u1\"}").unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("|u1", true, vec![5])
        );
        let h = parse_header("{'descr': '<i4', 'fortran_order': False, 'shape': ()}").unwrap();
        assert!(h.shape.is_empty());
        assert!(parse_header("{'descr': '<i4', 'shape': ()}").is_err());
        assert!(
            parse_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'x': 1}")
                .is_err()
        );
        assert!(
            parse_header("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': ()}").is_err()
        );
    }

    #[test]
    fn header_is_padded_to_64_bytes() {
        for shape in [&[][..], &[3], &[2, 3, 4], &[100000, 1000000]] {
            let h = header_bytes("<f4", shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
        }
    }

    #[test]
    fn descr_rules() {
        assert!(parse_descr("<f4").is_ok());
        assert!(parse_descr("|u1").is_ok());
        assert!(parse_descr(">u1").is_ok());
        assert!(parse_descr(">f8").unwrap_err().contains("big-endian"));
        assert!(parse_descr("<f2").unwrap_err().contains("half"));
        assert!(parse_descr("<c16").is_err());
        assert!(parse_descr("|O").is_err());
        assert!(parse_descr("<U5").is_err());
    }
}
