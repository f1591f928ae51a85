//! Draws BENCHMARKS.md's load plots (SVG) from the load generator's JSON
//! lines (`benches/figures.sh`):
//!
//! - `cpu_rss.svg`: server CPU and RSS against concurrent calls, Voxgate
//!   (each VAD) and the SIPp `-rtp_echo` floor;
//! - `latency.svg`: turn latency and barge-in stop time against calls;
//! - `impairment.svg`: the jitter buffer's delay and concealed frames per profile;
//! - `distributions.svg`: turn latency and barge-in distributions (CDF) per profile;
//!
//! and prints the same runs as BENCHMARKS.md's tables (Markdown).
//!
//!   plot RESULTS.jsonl OUT_DIR

use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

const COLOURS: [RGBColor; 4] =
    [RGBColor(217, 72, 15), RGBColor(25, 113, 194), RGBColor(90, 90, 90), RGBColor(47, 158, 68)];

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or(0.0)
}

/// The clean-profile runs of `label`, by calls.
fn series<'a>(runs: &'a [Value], label: &str) -> Vec<&'a Value> {
    let mut s: Vec<&Value> = runs.iter().filter(|r| r["label"] == label && r["profile"] == "clean").collect();
    s.sort_by_key(|r| r["calls"].as_u64().unwrap_or(0));
    s
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn line_chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Res {
    let x_max = lines.iter().flat_map(|(_, p)| p.iter().map(|v| v.0)).fold(0.0, f64::max) * 1.05;
    let y_max = lines.iter().flat_map(|(_, p)| p.iter().map(|v| v.1)).fold(0.0, f64::max) * 1.15 + 1e-9;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc("concurrent calls").y_desc(y_desc).light_line_style(WHITE).draw()?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
    Ok(())
}

fn cpu_rss(runs: &[Value], out: &Path) -> Res {
    let root = SVGBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let labels = ["voxgate-webrtc-vad", "voxgate-silero-vad", "sipp-echo"];
    let pick = |key: &[&str]| -> Vec<(String, Vec<(f64, f64)>)> {
        labels
            .iter()
            .map(|l| {
                (l.to_string(), series(runs, l).iter().map(|r| (num(r, &["calls"]), num(r, key))).collect())
            })
            .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
            .collect()
    };
    line_chart(&left, "Server CPU", "% of one core", &pick(&["server_cpu_pct"]))?;
    line_chart(&right, "Server RSS", "MiB", &pick(&["server_rss_mib"]))?;
    root.present()?;
    Ok(())
}

fn latency(runs: &[Value], out: &Path) -> Res {
    let root = SVGBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let s = series(runs, "voxgate-webrtc-vad");
    let pts = |key: &[&str]| s.iter().map(|r| (num(r, &["calls"]), num(r, key))).collect::<Vec<_>>();
    line_chart(
        &left,
        "Turn latency, server-added",
        "ms",
        &[("p50".into(), pts(&["server_added_ms", "p50"])), ("p99".into(), pts(&["server_added_ms", "p99"]))],
    )?;
    line_chart(
        &right,
        "Barge-in: agent stops after",
        "ms",
        &[("p50".into(), pts(&["barge_in_ms", "p50"])), ("p99".into(), pts(&["barge_in_ms", "p99"]))],
    )?;
    root.present()?;
    Ok(())
}

fn impairment(runs: &[Value], out: &Path) -> Res {
    let profiles = ["clean", "4g", "3g", "gilbert-elliott"];
    let rows: Vec<(usize, &Value)> = profiles
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            runs.iter()
                .rev()
                .find(|r| r["label"] == "voxgate-webrtc-vad" && r["profile"] == *p && r["calls"] == 200)
                .map(|r| (i, r))
        })
        .collect();
    let root = SVGBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let bars = |area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
                title: &str,
                y: &str,
                f: &dyn Fn(&Value) -> f64|
     -> Res {
        let y_max = rows.iter().map(|(_, r)| f(r)).fold(0.0, f64::max) * 1.2 + 1e-9;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((0..profiles.len() - 1).into_segmented(), 0.0..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(profiles.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => profiles.get(*i).copied().unwrap_or("").to_owned(),
                _ => String::new(),
            })
            .y_desc(y)
            .draw()?;
        chart.draw_series(rows.iter().map(|(i, r)| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(*i), 0.0), (SegmentValue::Exact(i + 1), f(r))],
                COLOURS[1].filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        Ok(())
    };
    bars(&left, "Jitter buffer delay (200 calls)", "mean target delay, ms", &|r| {
        num(r, &["jitter", "mean_delay_ms"])
    })?;
    // Packets too late to play stayed at zero in every profile (the buffer
    // grew instead; BENCHMARKS.md's table has the counts): show what loss left to conceal.
    bars(&right, "Caller frames concealed (200 calls)", "% of frames played", &|r| {
        let played = num(r, &["jitter", "received"]) + num(r, &["jitter", "concealed"]);
        if played > 0.0 { num(r, &["jitter", "concealed"]) / played * 100.0 } else { 0.0 }
    })?;
    root.present()?;
    Ok(())
}

/// The runs as Markdown tables: by concurrent calls, then by impairment profile.
fn tables(runs: &[Value]) {
    let floor = |calls: &Value| {
        runs.iter()
            .find(|r| r["label"] == "sipp-echo" && r["calls"] == *calls)
            .map(|r| num(r, &["cpu_pct_per_call"]))
    };
    println!(
        "| run | calls | answered | setup p50 / p99 | server CPU (per call) | x SIPp floor | RSS (per call) | agent frames late / lost | lateness p99 | turn, server-added p50 / p99 | barge-in p50 / p99 | load generator CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs.iter().filter(|r| r["profile"] == "clean") {
        let echo = r["label"] == "sipp-echo";
        let ratio = match floor(&r["calls"]) {
            Some(f) if f > 0.0 && !echo => format!("{:.1}", num(r, &["cpu_pct_per_call"]) / f),
            _ => "-".into(),
        };
        let (turn, barge) = if echo {
            ("-".to_owned(), "-".to_owned())
        } else {
            (
                format!(
                    "{:.0} / {:.0} ms",
                    num(r, &["server_added_ms", "p50"]),
                    num(r, &["server_added_ms", "p99"])
                ),
                format!("{:.0} / {:.0} ms", num(r, &["barge_in_ms", "p50"]), num(r, &["barge_in_ms", "p99"])),
            )
        };
        println!(
            "| {} | {} | {} | {:.1} / {:.1} ms | {:.0} % ({:.3} %) | {ratio} | {:.0} MiB ({:.0} KiB) | {} / {} of {} | {:.1} ms | {turn} | {barge} | {:.0} % |",
            r["label"].as_str().unwrap_or(""),
            r["calls"],
            r["answered"],
            num(r, &["setup_ms", "p50"]),
            num(r, &["setup_ms", "p99"]),
            num(r, &["server_cpu_pct"]),
            num(r, &["cpu_pct_per_call"]),
            num(r, &["server_rss_mib"]),
            num(r, &["rss_kib_per_call"]),
            r["late_frames"],
            r["lost_frames"],
            r["agent_frames"],
            num(r, &["lateness_ms", "p99"]),
            num(r, &["loadgen_cpu_pct"]),
        );
    }
    println!();
    println!(
        "| profile | calls | caller packets into the jitter buffers | late | lost | concealed | late rate | mean delay | turn, server-added p50 / p99 | barge-in p50 / p99 | agent frames late |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs.iter().filter(|r| r["label"] == "voxgate-webrtc-vad" && r["calls"] == 200) {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} % | {:.0} ms | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {} |",
            r["profile"].as_str().unwrap_or(""),
            r["calls"],
            r["jitter"]["received"],
            r["jitter"]["late"],
            r["jitter"]["lost"],
            r["jitter"]["concealed"],
            num(r, &["jitter", "late_rate"]) * 100.0,
            num(r, &["jitter", "mean_delay_ms"]),
            num(r, &["server_added_ms", "p50"]),
            num(r, &["server_added_ms", "p99"]),
            num(r, &["barge_in_ms", "p50"]),
            num(r, &["barge_in_ms", "p99"]),
            r["late_frames"],
        );
    }
}

/// Cumulative distributions of the server-added turn latency and of
/// barge-in, one line per impairment profile (200 calls).
fn distributions(runs: &[Value], out: &Path) -> Res {
    let root = SVGBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let profiles = ["clean", "4g", "3g", "gilbert-elliott"];
    let lines = |key: &[&str]| -> Vec<(String, Vec<(f64, f64)>)> {
        profiles
            .iter()
            .filter_map(|p| {
                let r = runs.iter().rev().find(|r| {
                    r["label"] == "voxgate-webrtc-vad" && r["profile"] == *p && r["calls"] == 200
                })?;
                let points = key.iter().fold(r, |v, k| &v[*k]).as_array()?;
                let pts: Vec<(f64, f64)> =
                    points.iter().filter_map(|pq| Some((pq[1].as_f64()?, pq[0].as_f64()? * 100.0))).collect();
                Some((p.to_string(), pts))
            })
            .collect()
    };
    let cdf = |area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
               title: &str,
               lines: &[(String, Vec<(f64, f64)>)]|
     -> Res {
        // Up to the 95th percentile: the last points of the lossy profiles run off to seconds.
        let x_max =
            lines.iter().flat_map(|(_, p)| p.iter().filter(|v| v.1 <= 95.0).map(|v| v.0)).fold(0.0, f64::max)
                * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max.max(1.0), 0.0..100.0)?;
        chart
            .configure_mesh()
            .x_desc("ms")
            .y_desc("% of samples at or below")
            .light_line_style(WHITE)
            .draw()?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied().filter(|p| p.0 <= x_max),
                    c.stroke_width(2),
                ))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .draw()?;
        Ok(())
    };
    cdf(&left, "Turn latency, server-added (200 calls)", &lines(&["server_added_cdf"]))?;
    cdf(&right, "Barge-in stop time (200 calls)", &lines(&["barge_in_ms", "cdf"]))?;
    root.present()?;
    Ok(())
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(out)) = (args.get(1), args.get(2)) else {
        return Err("usage: plot RESULTS.jsonl OUT_DIR".into());
    };
    let runs: Vec<Value> =
        std::fs::read_to_string(input)?.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let out = Path::new(out);
    std::fs::create_dir_all(out)?;
    cpu_rss(&runs, &out.join("cpu_rss.svg"))?;
    latency(&runs, &out.join("latency.svg"))?;
    impairment(&runs, &out.join("impairment.svg"))?;
    distributions(&runs, &out.join("distributions.svg"))?;
    tables(&runs);
    println!(
        "wrote {}/{{cpu_rss,latency,impairment,distributions}}.svg from {} runs",
        out.display(),
        runs.len()
    );
    Ok(())
}
