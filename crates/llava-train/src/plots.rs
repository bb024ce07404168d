//! `images/*.png`: every logged scalar drawn against the step after training, as ms-swift
//! draws its TensorBoard tags (`train_loss.png` with an extra smoothed curve, EMA 0.9,
//! debiased; `eval_loss.png`; a single point is drawn as a dot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use serde_json::Value;

use crate::error::{Result, TrainError, io};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ascii.ttf");

/// The series of a log history: `train_<key>` from training lines (those with `loss`),
/// `eval_<key>` from evaluation lines, each as (step, value).
pub fn series(history: &[Value]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in history {
        let Some(obj) = line.as_object() else {
            continue;
        };
        let Some(step) = obj.get("global_step").and_then(Value::as_f64) else {
            continue;
        };
        let eval = obj.contains_key("eval_loss");
        let train = obj.contains_key("loss");
        if !eval && !train {
            continue;
        }
        for (key, v) in obj {
            let Some(v) = v.as_f64() else { continue };
            if matches!(key.as_str(), "global_step" | "epoch") || key.ends_with("runtime") {
                continue;
            }
            let name = if eval {
                if !key.starts_with("eval_") || key.contains("per_second") {
                    continue;
                }
                key.clone()
            } else {
                format!("train_{key}")
            };
            let name: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            out.entry(name.trim_end_matches('_').to_string())
                .or_default()
                .push((step, v));
        }
    }
    out
}

/// Debiased exponential moving average (TensorBoard's smoothing).
fn smooth(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let mut last = 0.0;
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        last = last * weight + (1.0 - weight) * y;
        out.push((x, last / (1.0 - weight.powi(i as i32 + 1))));
    }
    out
}

/// Draws every series of `history` to `<run_dir>/images/<name>.png`; returns the files.
pub fn plot_history(run_dir: &Path, history: &[Value]) -> Result<Vec<PathBuf>> {
    static FONT_ONCE: Once = Once::new();
    FONT_ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let dir = run_dir.join("images");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut files = Vec::new();
    for (name, points) in series(history) {
        let path = dir.join(format!("{name}.png"));
        draw(&path, &name, &points).map_err(|e| TrainError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        files.push(path);
    }
    Ok(files)
}

fn draw(path: &Path, name: &str, points: &[(f64, f64)]) -> std::result::Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (x0, x1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((y1 - y0) * 0.05).max(1e-12 + y1.abs() * 1e-3);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(name, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("global_step")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    if points.len() == 1 {
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 5, BLUE.filled())))
            .map_err(|e| err(&e))?;
    } else {
        let raw = if name == "train_loss" {
            BLUE.mix(0.35)
        } else {
            BLUE.mix(1.0)
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), raw.stroke_width(2)))
            .map_err(|e| err(&e))?;
        if name == "train_loss" {
            chart
                .draw_series(LineSeries::new(smooth(points, 0.9), BLUE.stroke_width(2)))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn series_from_a_history_and_the_pictures() {
        let history = vec![
            json!({"loss": 2.0, "acc": 0.1, "learning_rate": 0.0, "grad_norm": 1.0, "train_speed(iter/s)": 3.0, "epoch": 0.5, "global_step": 1}),
            json!({"loss": 1.5, "acc": 0.2, "learning_rate": 1e-4, "grad_norm": 0.9, "train_speed(iter/s)": 3.0, "epoch": 1.0, "global_step": 2}),
            json!({"eval_loss": 1.7, "eval_acc": 0.3, "eval_runtime": 0.1, "eval_samples_per_second": 9.0, "epoch": 1.0, "global_step": 2}),
            json!({"train_runtime": 1.0, "train_loss": 1.75, "global_step": 2}),
        ];
        let s = series(&history);
        assert_eq!(
            s.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "eval_acc",
                "eval_loss",
                "train_acc",
                "train_grad_norm",
                "train_learning_rate",
                "train_loss",
                "train_train_speed_iter_s"
            ]
        );
        assert_eq!(s["train_loss"], [(1.0, 2.0), (2.0, 1.5)]);
        let smoothed = smooth(&s["train_loss"], 0.9);
        assert!((smoothed[0].1 - 2.0).abs() < 1e-12);
        let dir = tempfile::tempdir().unwrap();
        let files = plot_history(dir.path(), &history).unwrap();
        assert_eq!(files.len(), 7);
        let png = image::open(&files[5]).unwrap();
        assert_eq!((png.width(), png.height()), (800, 500));
    }
}
