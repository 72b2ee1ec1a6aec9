//! Plots of a model's samples against its target, as SVG (text is left to
//! the viewer, so no fonts are needed where the plot is made).
//!
//! * 2-d: the samples (at most [`MAX_POINTS`]) as a scatter over labelled
//!   contour lines of the target's log-density (1, 3, 6 and 10 nats below its
//!   peak), with the log Z error and the ESS in the caption.
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
            let coords = histogram_coords(coords, d)?;
            histograms(&mut svg, samples, target, &coords, title)?;
        }
    }
    Ok(svg)
}

/// The coordinates to histogram: those asked for (checked), else the first
/// four.
fn histogram_coords(coords: Option<&[usize]>, d: usize) -> Result<Vec<usize>> {
    match coords {
        Some(c) => {
            check_coords(c, d)?;
            Ok(c.to_vec())
        }
        None => Ok((0..d.min(4)).collect()),
    }
}

/// Checks coordinates to plot against the dimension (before any sampling).
pub fn check_coords(coords: &[usize], d: usize) -> Result<()> {
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

/// Most samples drawn as points in a 2-d scatter (the first ones: the
/// samples are independent, so they are a fair subset); keeps the SVG small.
pub const MAX_POINTS: usize = 2_000;
/// Grid points per axis of the 2-d density contours.
const CONTOUR_GRID: usize = 121;
/// Contour levels of the target's log-density, in nats below its maximum
/// over the window, with their colours (darkest innermost).
const LEVELS: [(f64, RGBColor); 4] = [
    (1.0, RGBColor(8, 48, 107)),
    (3.0, RGBColor(33, 113, 181)),
    (6.0, RGBColor(107, 174, 214)),
    (10.0, RGBColor(189, 215, 231)),
];

/// The caption's line of estimates: `log Z` error (importance sampling,
/// `R_disc`) and ESS when the samples have path costs and the target a
/// known `log Z`.
fn estimates_line(samples: &Samples, target: Option<&dyn GroundTruth>) -> String {
    let n = samples.xs.len() / samples.d;
    let Some(costs) = &samples.costs else {
        return format!("{n} samples; no path costs (probability-flow ODE): no log Z estimate");
    };
    let r: Vec<f64> = costs.iter().map(|c| c.r_disc).collect();
    let e = diffctl_trainer::eval::estimates(&r);
    match target.and_then(|t| t.log_z()) {
        Some(z) => format!(
            "log Z error {:+.4} (importance sampling, {n} paths), ESS {:.3}",
            e.log_z_is - z,
            e.ess
        ),
        None => format!("log Z_is {:.4} ({n} paths), ESS {:.3}", e.log_z_is, e.ess),
    }
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

    let root = SVGBackend::with_string(svg, (760, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let body = root.titled(title, ("sans-serif", 20)).map_err(plot_error)?;
    let (body, legend) = body.split_vertically(700);
    let caption = estimates_line(samples, target);
    let mut chart = scatter_axes(&body, &caption, 15, (x0, x1), (y0, y1))?;

    let mut drawn_levels = Vec::new();
    if let Some(t) = target {
        let g = CONTOUR_GRID;
        let (hx, hy) = ((x1 - x0) / (g - 1) as f64, (y1 - y0) / (g - 1) as f64);
        // log rho on the grid, row r at y0 + r hy, column c at x0 + c hx.
        let logp: Vec<f64> = (0..g * g)
            .map(|k| {
                let p = [
                    (x0 + (k % g) as f64 * hx) as f32,
                    (y0 + (k / g) as f64 * hy) as f32,
                ];
                t.log_density(&p) as f64
            })
            .collect();
        let max = logp
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        for (below, colour) in LEVELS {
            let to_xy = |(c, r): (f64, f64)| (x0 + c * hx, y0 + r * hy);
            let lines = contour_lines(&logp, g, max - below);
            if !lines.is_empty() {
                drawn_levels.push((below, colour));
            }
            for line in lines {
                chart
                    .draw_series(LineSeries::new(
                        line.into_iter().map(to_xy),
                        colour.stroke_width(2),
                    ))
                    .map_err(plot_error)?;
            }
        }
    }

    let n = samples.xs.len() / 2;
    let shown = n.min(MAX_POINTS);
    let inside = |&(x, y): &(f64, f64)| x > x0 && x < x1 && y > y0 && y < y1;
    let points: Vec<(f64, f64)> = samples.xs[..2 * shown]
        .chunks_exact(2)
        .map(|p| (p[0] as f64, p[1] as f64))
        .filter(inside)
        .collect();
    let dot = RED.mix(0.55).filled();
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 2, dot)))
        .map_err(plot_error)?;

    // The legend, below the axes: the contour levels, then the points.
    let font = ("sans-serif", 14).into_font();
    let text = |s: &str, x: i32, y: i32| Text::new(s.to_string(), (x, y), font.clone());
    let (row1, row2) = (18, 44);
    if !drawn_levels.is_empty() {
        legend
            .draw(&text(
                "target log-density, nats below its peak:",
                60,
                row1 - 7,
            ))
            .map_err(plot_error)?;
        for (i, (below, colour)) in drawn_levels.iter().enumerate() {
            let x = 340 + 95 * i as i32;
            legend
                .draw(&PathElement::new(
                    vec![(x, row1), (x + 28, row1)],
                    colour.stroke_width(3),
                ))
                .map_err(plot_error)?;
            legend
                .draw(&text(&format!("{below}"), x + 34, row1 - 7))
                .map_err(plot_error)?;
        }
    }
    legend
        .draw(&Circle::new((64, row2), 3, dot))
        .map_err(plot_error)?;
    let what = if shown < n {
        format!("model samples (the first {shown} of {n} drawn)")
    } else {
        format!("model samples ({n})")
    };
    legend
        .draw(&text(&what, 76, row2 - 7))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

/// Contour lines of `values` (a `g x g` grid, row-major, row = y) at
/// `level`, by marching squares, as polylines in grid coordinates
/// `(column, row)`. Segments are joined at shared cell edges, so each
/// closed contour is one polyline.
fn contour_lines(values: &[f64], g: usize, level: f64) -> Vec<Vec<(f64, f64)>> {
    let at = |r: usize, c: usize| values[r * g + c];
    let inside = |r: usize, c: usize| at(r, c) >= level;
    // Edge ids: 2 (r g + c) for (r, c)-(r, c+1), 2 (r g + c) + 1 for (r, c)-(r+1, c).
    let h = |r: usize, c: usize| 2 * (r * g + c);
    let v = |r: usize, c: usize| 2 * (r * g + c) + 1;
    let point = |e: usize| -> (f64, f64) {
        let (k, vertical) = (e / 2, e % 2 == 1);
        let (r, c) = (k / g, k % g);
        let (a, b) = if vertical {
            (at(r, c), at(r + 1, c))
        } else {
            (at(r, c), at(r, c + 1))
        };
        let f = if (b - a).abs() > 0.0 {
            ((level - a) / (b - a)).clamp(0.0, 1.0)
        } else {
            0.5
        };
        if vertical {
            (c as f64, r as f64 + f)
        } else {
            (c as f64 + f, r as f64)
        }
    };
    let mut segments: Vec<(usize, usize)> = Vec::new();
    for r in 0..g - 1 {
        for c in 0..g - 1 {
            // Edges in order bottom, right, top, left; crossed where the ends differ.
            let edges = [
                (h(r, c), inside(r, c) != inside(r, c + 1)),
                (v(r, c + 1), inside(r, c + 1) != inside(r + 1, c + 1)),
                (h(r + 1, c), inside(r + 1, c) != inside(r + 1, c + 1)),
                (v(r, c), inside(r, c) != inside(r + 1, c)),
            ];
            let crossed: Vec<usize> = edges.iter().filter(|e| e.1).map(|e| e.0).collect();
            match crossed.len() {
                2 => segments.push((crossed[0], crossed[1])),
                4 => {
                    // A saddle: the centre's side decides the pairing.
                    let centre = (at(r, c) + at(r, c + 1) + at(r + 1, c) + at(r + 1, c + 1)) / 4.0;
                    if (centre >= level) == inside(r, c) {
                        segments.push((crossed[0], crossed[1]));
                        segments.push((crossed[2], crossed[3]));
                    } else {
                        segments.push((crossed[0], crossed[3]));
                        segments.push((crossed[1], crossed[2]));
                    }
                }
                _ => {}
            }
        }
    }
    // Join segments that share an edge into polylines.
    let mut by_edge: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    for (i, &(a, b)) in segments.iter().enumerate() {
        by_edge.entry(a).or_default().push(i);
        by_edge.entry(b).or_default().push(i);
    }
    let mut used = vec![false; segments.len()];
    let mut lines = Vec::new();
    for start in 0..segments.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let (a, b) = segments[start];
        let mut chain = std::collections::VecDeque::from([a, b]);
        for forward in [true, false] {
            loop {
                let end = if forward {
                    chain[chain.len() - 1]
                } else {
                    chain[0]
                };
                let next = by_edge[&end].iter().copied().find(|&i| !used[i]);
                let Some(i) = next else { break };
                used[i] = true;
                let (p, q) = segments[i];
                let other = if p == end { q } else { p };
                if forward {
                    chain.push_back(other);
                } else {
                    chain.push_front(other);
                }
            }
        }
        lines.push(chain.into_iter().map(point).collect());
    }
    lines
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
            let coords = histogram_coords(coords, d)?;
            histograms_versus(&mut svg, data, samples, &coords, title)?;
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
