//! Plots of a model's samples against its target, as SVG (text is left to
//! the viewer, so no fonts are needed where the plot is made).
//!
//! * 2-d: the samples as a scatter over filled contours of the target's
//!   log-density (bands of one nat below the maximum over the window).
//! * otherwise: histograms of chosen coordinates against the target's true
//!   marginal density (closed form or quadrature).
//! * against data ([`render_versus`]): in 2-d the data and the samples side
//!   by side on the same window; otherwise the marginal histograms of both.

use std::fmt::Display;

use diffctl_runtime::target::GroundTruth;
#[cfg(test)]
use diffctl_runtime::target::TargetSpec;
use diffctl_trainer::eval::Samples;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Cells per axis of the 2-d density grid.
const GRID: usize = 160;
/// Contour bands (one nat each) below the window's maximum log-density.
const BANDS: usize = 14;
/// Histogram bins per coordinate.
const BINS: usize = 60;
/// Largest number of coordinates one figure shows.
pub const MAX_COORDS: usize = 16;

const BLUE: RGBColor = RGBColor(49, 110, 180);
const RED: RGBColor = RGBColor(200, 40, 40);

/// The SVG text of a plot of `samples` (of a model of `target`): a scatter
/// over density contours when `d = 2` and no coordinates are chosen,
/// marginal histograms of `coords` (default: the first four) otherwise.
pub fn render(
    samples: &Samples,
    target: Option<&dyn GroundTruth>,
    coords: Option<&[usize]>,
    title: &str,
) -> Result<String> {
    let d = samples.d;
    let mut svg = String::new();
    match coords {
        None if d == 2 => scatter(&mut svg, samples, target, title)?,
        _ => {
            let default: Vec<usize> = (0..d.min(4)).collect();
            let coords = coords.unwrap_or(&default);
            check_coords(coords, d)?;
            histograms(&mut svg, samples, target, coords, title)?;
        }
    }
    Ok(svg)
}

fn check_coords(coords: &[usize], d: usize) -> Result<()> {
    if coords.is_empty() || coords.len() > MAX_COORDS {
        return Err(Error::new(format!(
            "choose between 1 and {MAX_COORDS} coordinates to plot"
        )));
    }
    match coords.iter().find(|&&j| j >= d) {
        Some(j) => Err(Error::new(format!(
            "coordinate {j} does not exist: the model has d = {d} (coordinates 0..{})",
            d - 1
        ))),
        None => Ok(()),
    }
}

fn plot_error(e: impl Display) -> Error {
    Error::new(format!("drawing the plot: {e}"))
}

/// Coordinate `j` of every sample, finite values only.
fn column(samples: &Samples, j: usize) -> Vec<f64> {
    samples
        .xs
        .chunks_exact(samples.d)
        .map(|x| x[j] as f64)
        .filter(|v| v.is_finite())
        .collect()
}

/// The window of one axis: the central 99% of the samples and the target's
/// bulk, widened by 5% on each side.
fn axis_range(values: &[f64], truth: Option<(f64, f64)>) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = match sorted.len() {
        0 => (-3.0, 3.0),
        n => (sorted[n / 200], sorted[(n - 1) - n / 200]),
    };
    if let Some((a, b)) = truth {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if hi - lo < 1e-6 {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

/// Axes of `x1` against `x0` over the given ranges, captioned, on `area`.
fn scatter_axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    caption_size: u32,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", caption_size))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 14))
        .x_desc("x0")
        .y_desc("x1")
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

fn scatter(
    svg: &mut String,
    samples: &Samples,
    target: Option<&dyn GroundTruth>,
    title: &str,
) -> Result<()> {
    let (xs, ys) = (column(samples, 0), column(samples, 1));
    let (x0, x1) = axis_range(&xs, target.and_then(|t| t.marginal_range(0)));
    let (y0, y1) = axis_range(&ys, target.and_then(|t| t.marginal_range(1)));

    let root = SVGBackend::with_string(svg, (760, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = scatter_axes(&root, title, 20, (x0, x1), (y0, y1))?;

    if let Some(t) = target {
        let (hx, hy) = ((x1 - x0) / GRID as f64, (y1 - y0) / GRID as f64);
        // log rho at cell centres, row by row (row r at y0 + (r + 1/2) hy).
        let logp: Vec<f64> = (0..GRID * GRID)
            .map(|k| {
                let (r, c) = (k / GRID, k % GRID);
                let p = [
                    (x0 + (c as f64 + 0.5) * hx) as f32,
                    (y0 + (r as f64 + 0.5) * hy) as f32,
                ];
                t.log_density(&p) as f64
            })
            .collect();
        let max = logp
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        // Band 0 is the highest; cells below all bands are left white.
        let band = |v: f64| ((max - v).floor() as usize).min(BANDS);
        let mut cells = Vec::new();
        for r in 0..GRID {
            // Runs of equal band along the row become one rectangle.
            let mut c = 0;
            while c < GRID {
                let b = band(logp[r * GRID + c]);
                let start = c;
                while c < GRID && band(logp[r * GRID + c]) == b {
                    c += 1;
                }
                if b < BANDS {
                    let shade = 1.0 - b as f64 / BANDS as f64;
                    let fill = BLUE.mix(0.08 + 0.6 * shade).filled();
                    let (ya, yb) = (y0 + r as f64 * hy, y0 + (r + 1) as f64 * hy);
                    let (xa, xb) = (x0 + start as f64 * hx, x0 + c as f64 * hx);
                    cells.push(Rectangle::new([(xa, ya), (xb, yb)], fill));
                }
            }
        }
        chart.draw_series(cells).map_err(plot_error)?;
    }

    let inside = |&(x, y): &(f64, f64)| x > x0 && x < x1 && y > y0 && y < y1;
    let points: Vec<(f64, f64)> = samples
        .xs
        .chunks_exact(2)
        .map(|p| (p[0] as f64, p[1] as f64))
        .filter(inside)
        .collect();
    chart
        .draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 2, BLACK.mix(0.45).filled())),
        )
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

fn histograms(
    svg: &mut String,
    samples: &Samples,
    target: Option<&dyn GroundTruth>,
    coords: &[usize],
    title: &str,
) -> Result<()> {
    let k = coords.len();
    let cols = if k <= 4 { k.min(2) } else { 3 };
    let rows = k.div_ceil(cols);
    let size = (460 * cols as u32, 60 + 330 * rows as u32);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let caption = if target.is_some_and(|t| t.marginal_density(0, 0.0).is_some()) {
        format!("{title}  (bars: samples, line: true marginal)")
    } else {
        format!("{title}  (bars: samples)")
    };
    let body = root
        .titled(&caption, ("sans-serif", 20))
        .map_err(plot_error)?;
    let n = samples.xs.len() / samples.d;
    for (area, &j) in body.split_evenly((rows, cols)).iter().zip(coords) {
        let values = column(samples, j);
        let (lo, hi) = axis_range(&values, target.and_then(|t| t.marginal_range(j)));
        // Densities over all n samples, so mass outside the window is not spread inside.
        let heights = bin_heights(&values, n, lo, hi);
        let curve: Vec<(f64, f64)> = match target {
            Some(t) => (0..=400)
                .map(|i| lo + (hi - lo) * i as f64 / 400.0)
                .filter_map(|x| Some((x, t.marginal_density(j, x)?)))
                .collect(),
            None => Vec::new(),
        };
        histogram_panel(area, j, (lo, hi), &heights, curve)?;
    }
    root.present().map_err(plot_error)
}

/// The SVG text of `samples` of a model against `data` (the same `d`): two
/// scatter panels on one window (data blue, samples red) when `d = 2` and no
/// coordinates are chosen; overlaid marginal histograms of `coords`
/// (default: the first four) otherwise.
pub fn render_versus(
    data: &Samples,
    samples: &Samples,
    coords: Option<&[usize]>,
    title: &str,
) -> Result<String> {
    if data.d != samples.d {
        return Err(Error::new(format!(
            "the data have d = {}, the samples d = {}",
            data.d, samples.d
        )));
    }
    let d = samples.d;
    let mut svg = String::new();
    match coords {
        None if d == 2 => scatter_versus(&mut svg, data, samples, title)?,
        _ => {
            let default: Vec<usize> = (0..d.min(4)).collect();
            let coords = coords.unwrap_or(&default);
            check_coords(coords, d)?;
            histograms_versus(&mut svg, data, samples, coords, title)?;
        }
    }
    Ok(svg)
}

/// One window for both sets: the union of their central 99%.
fn joint_range(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (a0, a1) = axis_range(a, None);
    let (b0, b1) = axis_range(b, None);
    (a0.min(b0), a1.max(b1))
}

fn scatter_versus(svg: &mut String, data: &Samples, samples: &Samples, title: &str) -> Result<()> {
    let (x0, x1) = joint_range(&column(data, 0), &column(samples, 0));
    let (y0, y1) = joint_range(&column(data, 1), &column(samples, 1));
    let root = SVGBackend::with_string(svg, (1320, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let body = root.titled(title, ("sans-serif", 20)).map_err(plot_error)?;
    let panels = body.split_evenly((1, 2));
    for (area, (set, what, colour)) in panels
        .iter()
        .zip([(data, "data", BLUE), (samples, "samples", RED)])
    {
        let n = set.xs.len() / set.d;
        let caption = format!("{what} ({n})");
        let mut chart = scatter_axes(area, &caption, 16, (x0, x1), (y0, y1))?;
        let points: Vec<(f64, f64)> = set
            .xs
            .chunks_exact(2)
            .map(|p| (p[0] as f64, p[1] as f64))
            .filter(|&(x, y)| x > x0 && x < x1 && y > y0 && y < y1)
            .collect();
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 2, colour.mix(0.45).filled())),
            )
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)
}

/// Densities of `values` in `BINS` bins of `[lo, hi)`, over all `n` points.
fn bin_heights(values: &[f64], n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0usize; BINS];
    for v in values {
        if *v >= lo && *v < hi {
            counts[(((v - lo) / width) as usize).min(BINS - 1)] += 1;
        }
    }
    counts
        .iter()
        .map(|&c| c as f64 / (n.max(1) as f64 * width))
        .collect()
}

fn histograms_versus(
    svg: &mut String,
    data: &Samples,
    samples: &Samples,
    coords: &[usize],
    title: &str,
) -> Result<()> {
    let k = coords.len();
    let cols = if k <= 4 { k.min(2) } else { 3 };
    let rows = k.div_ceil(cols);
    let size = (460 * cols as u32, 60 + 330 * rows as u32);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let body = root
        .titled(
            &format!("{title}  (blue bars: data, red line: samples)"),
            ("sans-serif", 20),
        )
        .map_err(plot_error)?;
    let (n_data, n_samples) = (data.xs.len() / data.d, samples.xs.len() / samples.d);
    for (area, &j) in body.split_evenly((rows, cols)).iter().zip(coords) {
        let (dv, sv) = (column(data, j), column(samples, j));
        let (lo, hi) = joint_range(&dv, &sv);
        let width = (hi - lo) / BINS as f64;
        let dh = bin_heights(&dv, n_data, lo, hi);
        let sh = bin_heights(&sv, n_samples, lo, hi);
        // The samples' histogram as a step line over the same bins.
        let steps: Vec<(f64, f64)> = sh
            .iter()
            .enumerate()
            .flat_map(|(b, &h)| {
                let xa = lo + b as f64 * width;
                [(xa, h), (xa + width, h)]
            })
            .collect();
        histogram_panel(area, j, (lo, hi), &dh, steps)?;
    }
    root.present().map_err(plot_error)
}

/// One histogram panel for coordinate `j`: blue bars of `heights` (equal bins
/// over `[lo, hi)`) and, unless empty, a red `overlay` line (the true marginal,
/// or the samples' histogram as steps).
fn histogram_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    j: usize,
    (lo, hi): (f64, f64),
    heights: &[f64],
    overlay: Vec<(f64, f64)>,
) -> Result<()> {
    let width = (hi - lo) / heights.len() as f64;
    let top = heights
        .iter()
        .chain(overlay.iter().map(|(_, y)| y))
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-12)
        * 1.08;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("x{j}"), ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 13))
        .y_desc("density")
        .draw()
        .map_err(plot_error)?;
    let bars = heights.iter().enumerate().map(|(b, &h)| {
        let xa = lo + b as f64 * width;
        Rectangle::new([(xa, 0.0), (xa + width, h)], BLUE.mix(0.5).filled())
    });
    chart.draw_series(bars).map_err(plot_error)?;
    if !overlay.is_empty() {
        chart
            .draw_series(LineSeries::new(overlay, RED.stroke_width(2)))
            .map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_samples(d: usize, n: usize) -> Samples {
        Samples {
            d,
            first: 0,
            xs: (0..n * d).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
            costs: None,
        }
    }

    #[test]
    fn renders_both_kinds() {
        let gmm = TargetSpec::Gmm.build_builtin();
        let svg = render(&fake_samples(2, 300), Some(&gmm), None, "gmm").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<circle"));
        let dw = TargetSpec::preset("dw20").unwrap().build_builtin();
        let svg = render(&fake_samples(20, 300), Some(&dw), None, "dw20").unwrap();
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        assert!(render(&fake_samples(20, 10), Some(&dw), Some(&[20]), "x").is_err());
        assert!(render(&fake_samples(20, 10), None, Some(&[]), "x").is_err());
    }

    #[test]
    fn renders_data_against_samples() {
        let svg = render_versus(&fake_samples(2, 200), &fake_samples(2, 300), None, "v").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<circle"));
        let svg = render_versus(&fake_samples(5, 200), &fake_samples(5, 300), None, "v").unwrap();
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        assert!(
            render_versus(&fake_samples(5, 20), &fake_samples(5, 30), Some(&[5]), "v").is_err()
        );
        assert!(render_versus(&fake_samples(2, 20), &fake_samples(3, 30), None, "v").is_err());
    }
}
