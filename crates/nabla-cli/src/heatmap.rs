//! PNG heat maps of a report's matrices (e.g. memory weightings over time), with a colour bar.

use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use nabla_zoo::experiment::Heatmap;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (900, 520);

/// White (low) to dark blue (high) for `t` in `[0, 1]`.
fn color(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Writes `map` as a PNG at `path` (atomically). Nothing is written for an empty map. Errors are one
/// line.
pub fn write_heatmap_png(map: &Heatmap, path: &Path) -> Result<bool, String> {
    let rows = map.values.len();
    let cols = map.values.first().map_or(0, |r| r.len());
    if rows == 0 || cols == 0 || map.values.iter().any(|r| r.len() != cols) {
        return Ok(false);
    }
    super::plot::ensure_font();
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let finite = map
        .values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else {
        (lo.min(0.0), hi.max(lo + 1e-12))
    };
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (main, bar) = root.split_horizontally(SIZE.0 - 110);
        let mut chart = ChartBuilder::on(&main)
            .caption(&map.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..cols as f64, 0.0..rows as f64)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&map.x_label)
            .y_desc(&map.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        let cells = map.values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(c, &v)| {
                Rectangle::new(
                    [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                    color((v - lo) / (hi - lo)).filled(),
                )
            })
        });
        chart.draw_series(cells).map_err(|e| err(&e))?;
        let mut scale = ChartBuilder::on(&bar)
            .margin_top(50)
            .margin_bottom(60)
            .margin_right(10)
            .y_label_area_size(55)
            .caption(&map.value_label, ("sans-serif", 14))
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(|e| err(&e))?;
        scale
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
        let steps = 100;
        scale
            .draw_series((0..steps).map(|i| {
                let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
                Rectangle::new(
                    [(0.0, lo + a * (hi - lo)), (1.0, lo + b * (hi - lo))],
                    color(a).filled(),
                )
            }))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, SIZE.0, SIZE.1, image::ColorType::Rgb8)
        .map_err(|e| err(&e))?;
    nabla::io::atomic_write(path, |w| w.write_all(&png))
        .map_err(|e| format!("cannot write {e}"))?;
    Ok(true)
}
