//! The learning-rate finder's curve as an SVG image.

use std::path::Path;

use plotters::prelude::*;

use crate::{Error, Result};

/// Draws `losses` over `lrs` (finite points only; the rate axis logarithmic when `log_x`), with the suggested
/// point marked, into an SVG file at `path`.
pub(super) fn lr_curve(
    path: &Path,
    lrs: &[f64],
    losses: &[f64],
    log_x: bool,
    suggested: Option<(f64, f64)>,
) -> Result<()> {
    let points: Vec<(f64, f64)> = lrs
        .iter()
        .zip(losses)
        .filter(|(x, y)| x.is_finite() && y.is_finite() && **x > 0.0)
        .map(|(x, y)| (*x, *y))
        .collect();
    if points.len() < 2 {
        return Err(Error::Config(
            "the learning-rate finder recorded fewer than two finite losses: nothing to plot".into(),
        ));
    }
    let (x0, x1) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (y0, y1) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    let pad = ((y1 - y0) * 0.05).max(f64::EPSILON);
    let plot_error = |e: &dyn std::fmt::Display| Error::Config(format!("plotting to {}: {e}", path.display()));
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20).x_label_area_size(40).y_label_area_size(60);
    let series = LineSeries::new(points.iter().copied(), &BLUE);
    let marker = suggested.map(|point| Circle::new(point, 6, RED.filled()));
    if log_x {
        let mut chart =
            builder.build_cartesian_2d((x0..x1).log_scale(), (y0 - pad)..(y1 + pad)).map_err(|e| plot_error(&e))?;
        chart.configure_mesh().x_desc("Learning rate").y_desc("Loss").draw().map_err(|e| plot_error(&e))?;
        chart.draw_series(series).map_err(|e| plot_error(&e))?;
        chart.draw_series(marker).map_err(|e| plot_error(&e))?;
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(|e| plot_error(&e))?;
        chart.configure_mesh().x_desc("Learning rate").y_desc("Loss").draw().map_err(|e| plot_error(&e))?;
        chart.draw_series(series).map_err(|e| plot_error(&e))?;
        chart.draw_series(marker).map_err(|e| plot_error(&e))?;
    }
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}
