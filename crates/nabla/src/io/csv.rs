//! Comma-separated integers (plain or gzipped), such as the UCI optical digits set.

use super::{IoError, Source};
use crate::Tensor;
use std::path::Path;

/// A table of integers read from a CSV file: `rows × cols` values in row-major order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntCsv {
    /// Number of (non-blank) lines.
    pub rows: usize,
    /// Number of fields per line.
    pub cols: usize,
    /// The values, row after row.
    pub values: Vec<i64>,
}

impl IntCsv {
    /// The values of row `i`.
    pub fn row(&self, i: usize) -> &[i64] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a CSV file of integers, gzipped or plain (detected from the first bytes).
///
/// Fields are separated by commas and may be surrounded by spaces; blank lines are skipped; every
/// line must have as many fields as the first. Errors name the file and the line:
/// `digits.csv:17: field 5 is "x3", not an integer`.
pub fn read_int_csv(path: impl AsRef<Path>) -> Result<IntCsv, IoError> {
    let path = path.as_ref();
    let bytes = Source::open(path)?.read_rest()?;
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0usize, 0usize);
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let parse_err = |reason: String| IoError::Parse {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let line = std::str::from_utf8(line)
            .map_err(|_| parse_err("not valid UTF-8".into()))?
            .trim();
        if line.is_empty() {
            continue;
        }
        let before = values.len();
        for (k, field) in line.split(',').enumerate() {
            let field = field.trim();
            let v: i64 = field.parse().map_err(|_| {
                parse_err(format!("field {} is \"{field}\", not an integer", k + 1))
            })?;
            values.push(v);
        }
        let n = values.len() - before;
        if rows == 0 {
            cols = n;
        } else if n != cols {
            return Err(parse_err(format!(
                "{n} fields, but the lines before have {cols}"
            )));
        }
        rows += 1;
    }
    Ok(IntCsv { rows, cols, values })
}

/// Reads a labelled CSV of integers, such as the UCI digits (`data/digits/digits.csv.gz`): every
/// line holds the features and then the class label. Returns the features unscaled as an `f32`
/// tensor `[rows, cols - 1]` and the labels.
///
/// ```
/// let path = nabla::data::datasets::bundled_data_dir().join("digits/digits.csv.gz");
/// let (x, labels) = nabla::io::read_digits_csv(&path).unwrap();
/// assert_eq!(x.dims(), &[1797, 64]);
/// assert_eq!(labels.len(), 1797);
/// assert_eq!(labels[..5], [0, 1, 2, 3, 4]);
/// ```
pub fn read_digits_csv(path: impl AsRef<Path>) -> Result<(Tensor, Vec<usize>), IoError> {
    let path = path.as_ref();
    let t = read_int_csv(path)?;
    if t.rows == 0 {
        return Err(IoError::format(path, "no data lines"));
    }
    if t.cols < 2 {
        return Err(IoError::format(
            path,
            format!("{} field per line: need features and a label", t.cols),
        ));
    }
    let f = t.cols - 1;
    let mut x = Vec::with_capacity(t.rows * f);
    let mut labels = Vec::with_capacity(t.rows);
    for r in 0..t.rows {
        let row = t.row(r);
        x.extend(row[..f].iter().map(|&v| v as f32));
        let label = row[f];
        labels.push(usize::try_from(label).map_err(|_| {
            IoError::format(path, format!("row {}: label {label} is negative", r + 1))
        })?);
    }
    Ok((Tensor::from_vec(x, [t.rows, f]), labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "1, 2,3\r\n\n4,5,-6\n").unwrap();
        let t = read_int_csv(&p).unwrap();
        assert_eq!((t.rows, t.cols), (2, 3));
        assert_eq!(t.values, [1, 2, 3, 4, 5, -6]);
        assert_eq!(t.row(1), [4, 5, -6]);

        std::fs::write(&p, "1,2,3\n4,x3,6\n").unwrap();
        let e = read_int_csv(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("t.csv:2: field 2 is \"x3\", not an integer"),
            "{e}"
        );

        std::fs::write(&p, "1,2,3\n4,5\n").unwrap();
        let e = read_int_csv(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("t.csv:2: 2 fields, but the lines before have 3"),
            "{e}"
        );

        std::fs::write(&p, "1,2,-3\n").unwrap();
        let e = read_digits_csv(&p).unwrap_err().to_string();
        assert!(e.ends_with("row 1: label -3 is negative"), "{e}");
    }
}
