//! PNG line plots of a report's curves (plotters, with an embedded font so no system fonts are
//! needed).

use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use nabla_zoo::experiment::Curve;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

pub(crate) fn ensure_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bytes are a valid TrueType font; registration only fails on malformed data.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A tick label: up to 4 significant digits, no trailing zeros, no float noise.
fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&mag) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Writes `curve` as a PNG at `path`, atomically (drawn in memory, then written beside `path`,
/// synced and renamed): a failed write leaves no truncated image. Nothing is written for a curve
/// without finite points. Errors are one line.
pub fn write_png(curve: &Curve, path: &Path) -> Result<bool, String> {
    let Some(png) =
        render_png(curve).map_err(|e| format!("cannot draw {}: {e}", path.display()))?
    else {
        return Ok(false);
    };
    nabla::io::atomic_write(path, |w| w.write_all(&png))
        .map_err(|e| format!("cannot write {e}"))?;
    Ok(true)
}

const SIZE: (u32, u32) = (800, 500);

/// `curve` as PNG bytes; `None` when it has no finite point.
fn render_png(curve: &Curve) -> Result<Option<Vec<u8>>, String> {
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    if !draw(curve, &mut rgb)? {
        return Ok(None);
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, SIZE.0, SIZE.1, image::ColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(Some(png))
}

fn draw(curve: &Curve, rgb: &mut [u8]) -> Result<bool, String> {
    ensure_font();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let pts: Vec<(f64, f64)> = curve
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!curve.log_y || *y > 0.0))
        .collect();
    if pts.is_empty() {
        return Ok(false);
    }
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x1 <= x0 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 <= y0 {
        let d = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        y0 -= d;
        y1 += d;
    }
    let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&curve.title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(&curve.x_label)
                .y_desc(&curve.y_label)
                .x_label_formatter(&|x| tick(*x))
                .y_label_formatter(&|y| tick(*y))
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in curve.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!curve.log_y || *y > 0.0))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if curve.log_y {
        draw!(
            builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| err(&e))?
        );
    } else {
        draw!(
            builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| err(&e))?
        );
    }
    root.present().map_err(|e| err(&e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_are_short() {
        assert_eq!(super::tick(0.6000000001), "0.6");
        assert_eq!(super::tick(50.0), "50");
        assert_eq!(super::tick(0.1234567), "0.1235");
        assert_eq!(super::tick(123456.0), "123456");
        assert_eq!(super::tick(1.5e-7), "1.50e-7");
    }
}
