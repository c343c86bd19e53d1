//! The HTML report of a run (`sim --html FILE`): one self-contained page, readable without
//! scripts or network: a summary table, the promises, the plots (inline SVG from
//! [`crate::svg`]) and the settings.
//!
//! The page holds no wall-clock numbers, so it is the same for the same seed and command.

use std::fmt::Write as _;

use crate::series::{Recording, Timeline};
use crate::svg::{escape, Band, Line, Mark, Plot};

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Request kinds drawn as their own line; the others are summed into one.
const OWN_LINES: usize = 6;

const STYLE: &str = "body{font-family:sans-serif;margin:24px auto;max-width:960px;color:#222}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left;font-size:13px}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.held{color:#1a7f37;font-weight:bold}.violated{color:#c62828;font-weight:bold}.skip{color:#777}\
.verdict{font-size:16px;padding:6px 10px;display:inline-block;border-radius:4px}\
.ok{background:#e6f4ea}.bad{background:#fdecea}figure{margin:18px 0}\
figcaption{font-size:12px;color:#555;max-width:900px}code{font-size:12px;background:#f5f5f5;padding:2px 4px}";

/// The page for `rec`.
pub fn render(rec: &Recording) -> String {
    let r = &rec.report;
    let mut h = String::new();
    let title = format!(
        "Simulation: {} seeds, {} peers, seed {}",
        r.seeds, r.peers, r.seed
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(h, "<h1>{}</h1>", escape(&title));
    if !rec.command.is_empty() {
        let _ = write!(h, "<p><code>{}</code></p>", escape(&rec.command));
    }
    let broken = r.invariant_violations;
    if broken == 0 {
        let judged = rec.promises.iter().filter(|p| p.judged).count();
        let _ = write!(
            h,
            "<p class=\"verdict ok\">All {judged} promises judged held.</p>"
        );
    } else {
        let _ = write!(
            h,
            "<p class=\"verdict bad\">{broken} violation(s) of the promises.</p>"
        );
    }
    summary(&mut h, rec);
    promises(&mut h, rec);
    h.push_str("<h2>Over time</h2>");
    figure(
        &mut h,
        &peers_plot(rec),
        "Peers up (the simulator's knowledge), peers with at least one overlay neighbour, and \
         how many peers the live honest seeds list as Alive (the fewest and the most over the \
         seeds). Shaded: fault windows; ticks at the foot: peer crashes and restarts.",
    );
    figure(
        &mut h,
        &delivery_plot(rec),
        "First-time gossip deliveries so far over those owed so far: each gossip is owed to \
         the peers that had a neighbour when it was made (and are up at the end of that \
         second), its origin excepted. It dips as new gossip is made and climbs as it spreads; \
         loss and partitions keep it down.",
    );
    figure(
        &mut h,
        &requests_plot(rec),
        "Requests sent per second, by wire type (log scale; a gap is a second without any), \
         and messages lost per second (dropped, stopped by a partition, or late).",
    );
    h.push_str("<h2>Gossip spread</h2>");
    figure(
        &mut h,
        &coverage_plot(rec),
        "Coverage: for each gossip, the share of the peers owed it that hold it, against the \
         time since it was made; the median and the worst over the gossips (the time axis is \
         logarithmic when the last delivery came more than 20 times later than the median \
         gossip reached half its peers). \
         A gossip counts if its origin is up at the end of the run in the instance that made \
         it; it is owed to the peers up at the end whose instance had a neighbour when it was \
         made, its origin excepted. In a large run a fixed sample of the gossips is followed \
         (every k-th made). Dashed: when the median and the worst reach 50 % and 99 %.",
    );
    figure(
        &mut h,
        &hops_plot(rec),
        "First-time gossip deliveries by the number of links the gossip travelled to get \
         there, over every gossip of the run.",
    );
    h.push_str("<h2>Detection and overlay</h2>");
    figure(
        &mut h,
        &detection_plot(rec),
        "Detection latency: the share of crashed peers removed by a seed quorum within a \
         given time of their crash (a peer never removed keeps the curve below 1).",
    );
    figure(
        &mut h,
        &degree_plot(rec),
        "Degree distribution of the final overlay among live peers (log-log), with the \
         power law fitted from the minimum degree.",
    );
    violations(&mut h, rec);
    settings(&mut h, rec);
    h.push_str(
        "<p class=\"skip\" style=\"font-size:12px\">Written by <code>sim --html</code>; no wall-clock numbers, so the \
         same seed and options give the same page. The numbers behind the plots: \
         <code>sim --json FILE</code>.</p></body></html>\n",
    );
    h
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v} ms"))
}

fn row(h: &mut String, k: &str, v: &str) {
    let _ = write!(
        h,
        "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
        escape(k),
        escape(v)
    );
}

fn summary(h: &mut String, rec: &Recording) {
    let r = &rec.report;
    h.push_str("<h2>Summary</h2><table>");
    row(h, "simulated time", &format!("{:.1} s", r.sim_time_s));
    row(h, "events", &r.events.to_string());
    row(h, "trace hash", &r.trace_hash);
    row(
        h,
        "live peers (largest overlay component)",
        &format!("{} ({})", r.live_peers, r.largest_component),
    );
    row(h, "gossip messages made", &r.gossip_generated.to_string());
    row(
        h,
        "gossip delivered / owed",
        &format!("{} / {} ({:.4})", r.delivered, r.owed, r.delivered_ratio),
    );
    if let (Some(attack), Some(ratio)) = (&r.sybil_attack, r.honest_delivered_ratio) {
        row(
            h,
            "Sybil peers (attack): honest_delivered_ratio",
            &format!(
                "{} ({}): {ratio:.6}, deliveries owed to and made by honest peers only",
                r.sybils, attack
            ),
        );
    }
    row(
        h,
        "gossip sends over a perfect flood's",
        &format!("{:.4}", r.overhead_ratio),
    );
    row(
        h,
        "most hops of a delivery (overlay diameter)",
        &format!("{} ({})", r.hops_max, r.eccentricity_max),
    );
    row(
        h,
        "peers crashed / removed by quorum",
        &format!("{} / {}", r.crashed_peers, r.detected),
    );
    row(
        h,
        "detection p50 / p99",
        &format!("{} / {}", ms(r.detection_ms_p50), ms(r.detection_ms_p99)),
    );
    row(h, "false removals", &r.false_removals.to_string());
    row(
        h,
        "promise 4 guarded",
        &format!(
            "{} peers, {:.1} % of their time up",
            r.promise4_peers,
            100.0 * r.promise4_share
        ),
    );
    row(
        h,
        "degree mean / max, power-law alpha",
        &format!(
            "{:.2} / {}, {}",
            r.degree_mean,
            r.degree_max,
            r.powerlaw_alpha
                .map_or_else(|| "–".to_string(), |a| format!("{a:.2}"))
        ),
    );
    row(
        h,
        "admissions / removals at seeds",
        &format!("{} / {}", r.admissions, r.removals),
    );
    row(
        h,
        "commit reaches every seed p50 / p99",
        &format!(
            "{} / {}",
            ms(r.commit_spread_ms_p50),
            ms(r.commit_spread_ms_p99)
        ),
    );
    row(h, "messages lost", &r.messages_lost.to_string());
    if let Some(c) = r.converged_ms {
        row(h, "promises 6–7 held after healing within", &ms(Some(c)));
    }
    if r.forged_sent > 0 {
        row(
            h,
            "forged messages sent / changes they caused",
            &format!("{} / {}", r.forged_sent, r.forged_changes),
        );
    }
    h.push_str("</table>");
}

fn promises(h: &mut String, rec: &Recording) {
    h.push_str(
        "<h2>Promises</h2><table><tr><th>#</th><th>promise</th><th>outcome</th>\
         <th>violations</th></tr>",
    );
    for p in &rec.promises {
        let class = match p.outcome {
            "held" => "held",
            "violated" => "violated",
            _ => "skip",
        };
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"n\">{}</td></tr>",
            p.promise,
            escape(p.what),
            p.outcome,
            p.violations
        );
    }
    if rec.start_failures > 0 {
        let _ = write!(
            h,
            "<tr><td class=\"n\">–</td><td>every node starts</td><td class=\"violated\">violated</td><td class=\"n\">{}</td></tr>",
            rec.start_failures
        );
    }
    h.push_str("</table>");
}

fn figure(h: &mut String, p: &Plot, caption: &str) {
    let _ = write!(
        h,
        "<figure>{}<figcaption>{}</figcaption></figure>",
        p.render(),
        escape(caption)
    );
}

/// Fault windows as bands and crashes, restarts, lies, forgeries, healing and the liveness
/// bound as marks, in seconds.
fn faults(t: &Timeline, rec: &Recording) -> (Vec<Band>, Vec<Mark>) {
    let bands = t
        .windows
        .iter()
        .map(|w| Band {
            label: w.kind.to_string(),
            color: match w.kind {
                "partition" => "#d62728",
                "network" => "#ff7f0e",
                _ => "#9467bd",
            },
            from: w.from_ms as f64 / 1000.0,
            to: w.to_ms as f64 / 1000.0,
        })
        .collect();
    let mut marks: Vec<Mark> = t
        .moments
        .iter()
        .map(|m| Mark {
            label: m.kind.to_string(),
            color: match m.kind {
                "peer crash" => "#000000",
                "peer restart" => "#2ca02c",
                "lie" => "#8c564b",
                _ => "#e377c2",
            },
            x: m.at_ms as f64 / 1000.0,
            full: false,
        })
        .collect();
    if let Some(heal) = rec.config.heal_at_ms {
        marks.push(Mark {
            label: "faults stop (healing)".into(),
            color: "#555555",
            x: heal as f64 / 1000.0,
            full: true,
        });
    }
    if let Some(by) = rec.config.liveness_by_ms {
        marks.push(Mark {
            label: "promises 6–7 due".into(),
            color: "#17becf",
            x: by as f64 / 1000.0,
            full: true,
        });
    }
    (bands, marks)
}

fn time_plot(rec: &Recording, title: &str, y_label: &str) -> Plot {
    let (bands, marks) = faults(&rec.timeline, rec);
    Plot {
        title: title.into(),
        x_label: "simulated time (s)".into(),
        y_label: y_label.into(),
        x_range: Some((0.0, rec.config.end_ms as f64 / 1000.0)),
        bands,
        marks,
        empty_note: "no samples".into(),
        ..Plot::default()
    }
}

fn over_time<T: Copy>(
    rec: &Recording,
    v: &[T],
    f: impl Fn(T) -> Option<f64>,
) -> Vec<(f64, Option<f64>)> {
    rec.series
        .t_s
        .iter()
        .zip(v)
        .map(|(&t, &y)| (t, f(y)))
        .collect()
}

fn peers_plot(rec: &Recording) -> Plot {
    let s = &rec.series;
    let mut p = time_plot(rec, "Peers over time", "peers");
    let f = |v: u32| Some(f64::from(v));
    let g = |v: Option<u32>| v.map(f64::from);
    p.y_include = vec![0.0];
    p.lines = vec![
        Line::new("peers up", PALETTE[0], over_time(rec, &s.peers_up, f)),
        Line {
            dashed: true,
            ..Line::new(
                "peers with a neighbour",
                PALETTE[2],
                over_time(rec, &s.peers_connected, f),
            )
        },
        Line::new(
            "Alive at seeds (fewest)",
            PALETTE[1],
            over_time(rec, &s.alive_at_seeds_min, g),
        ),
        Line {
            dashed: true,
            ..Line::new(
                "Alive at seeds (most)",
                PALETTE[4],
                over_time(rec, &s.alive_at_seeds_max, g),
            )
        },
    ];
    p
}

fn delivery_plot(rec: &Recording) -> Plot {
    let s = &rec.series;
    let mut p = time_plot(
        rec,
        "Gossip delivered so far",
        "first deliveries / owed (cumulative)",
    );
    p.y_include = vec![0.0, 1.0];
    p.lines = vec![Line::new(
        "delivered ratio",
        PALETTE[0],
        over_time(rec, &s.delivered_ratio, |v| v),
    )];
    p.empty_note = "no gossip was made".into();
    p
}

fn requests_plot(rec: &Recording) -> Plot {
    let s = &rec.series;
    let mut p = time_plot(
        rec,
        "Requests per second by type",
        "requests per second (log)",
    );
    p.log_y = true;
    // The busiest kinds each get a line (in wire-type order, so colours stay put); the
    // rest are summed into one.
    let mut by_total: Vec<(&String, f64)> = s
        .requests_per_s
        .iter()
        .map(|(k, v)| (k, v.iter().sum::<f64>()))
        .collect();
    by_total.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&String> = by_total.iter().take(OWN_LINES).map(|e| e.0).collect();
    let mut rest = vec![0.0; s.t_s.len()];
    let mut others = 0;
    for (kind, v) in &s.requests_per_s {
        if shown.contains(&kind) {
            let color = PALETTE[p.lines.len() % PALETTE.len()];
            p.lines
                .push(Line::new(kind.clone(), color, over_time(rec, v, Some)));
        } else {
            others += 1;
            for (r, x) in rest.iter_mut().zip(v) {
                *r += x;
            }
        }
    }
    if others > 0 {
        p.lines.push(Line::new(
            format!("{others} other types"),
            PALETTE[7],
            over_time(rec, &rest, Some),
        ));
    }
    p.lines.push(Line {
        dashed: true,
        ..Line::new(
            "messages lost",
            "#000000",
            over_time(rec, &s.lost_per_s, Some),
        )
    });
    p.empty_note = "no requests were counted".into();
    p
}

fn coverage_plot(rec: &Recording) -> Plot {
    let c = &rec.coverage;
    let curve = |v: &[f64]| -> Vec<(f64, Option<f64>)> {
        c.t_ms
            .iter()
            .zip(v)
            .map(|(&t, &y)| (t as f64, Some(y)))
            .collect()
    };
    let mut marks = Vec::new();
    for (what, at, color) in [
        ("median 50 %", c.median_50_ms, "#2ca02c"),
        ("median 99 %", c.median_99_ms, "#1f77b4"),
        ("worst 50 %", c.worst_50_ms, "#ff7f0e"),
        ("worst 99 %", c.worst_99_ms, "#d62728"),
    ] {
        if let Some(at) = at {
            marks.push(Mark {
                label: format!("{what} at {at} ms"),
                color,
                x: at as f64,
                full: true,
            });
        }
    }
    let sampled = if c.gossips_sampled < c.gossips_made {
        format!(", a sample of {} made", c.gossips_made)
    } else {
        String::new()
    };
    let fin = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    Plot {
        title: format!(
            "Gossip coverage ({} gossips{sampled}; at the end: median {}, worst {})",
            c.gossips_counted,
            fin(c.final_median),
            fin(c.final_worst)
        ),
        x_label: if c.log_t {
            "ms since the gossip was made (log)".into()
        } else {
            "ms since the gossip was made".into()
        },
        y_label: "share of owed peers holding it".into(),
        log_x: c.log_t,
        y_include: vec![0.0, 1.0],
        lines: vec![
            Line {
                step: true,
                ..Line::new("median over gossips", PALETTE[0], curve(&c.median))
            },
            Line {
                step: true,
                ..Line::new("worst gossip", PALETTE[3], curve(&c.worst))
            },
        ],
        marks,
        empty_note: if c.gossips_counted == 0 {
            "no gossip owed to any peer".into()
        } else {
            "no gossip delivered".into()
        },
        ..Plot::default()
    }
}

fn hops_plot(rec: &Recording) -> Plot {
    let h = &rec.hops_histogram;
    let total: u64 = h.iter().sum();
    let first = h.iter().position(|&n| n > 0);
    let last = h.iter().rposition(|&n| n > 0);
    let mode = h
        .iter()
        .enumerate()
        .max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)))
        .filter(|&(_, &n)| n > 0)
        .map(|(i, _)| i);
    let title = match (mode, last) {
        (Some(m), Some(l)) => format!(
            "Hops of first-time deliveries ({total} deliveries; most often {m}, at most {l})"
        ),
        _ => "Hops of first-time deliveries".into(),
    };
    let pts = match (first, last) {
        (Some(a), Some(z)) => (a..=z).map(|i| (i as f64, Some(h[i] as f64))).collect(),
        _ => Vec::new(),
    };
    Plot {
        title,
        x_label: "hops (links travelled)".into(),
        y_label: "first-time deliveries".into(),
        y_include: vec![0.0],
        x_range: first
            .zip(last)
            .map(|(a, z)| (a as f64 - 0.5, z as f64 + 0.5)),
        lines: vec![Line {
            bars: true,
            ..Line::new("first-time deliveries", PALETTE[0], pts)
        }],
        empty_note: "no gossip delivered".into(),
        ..Plot::default()
    }
}

fn detection_plot(rec: &Recording) -> Plot {
    let n = rec.detection.len();
    let mut took: Vec<u64> = rec
        .detection
        .iter()
        .filter_map(|d| d.removed_after_ms)
        .collect();
    took.sort_unstable();
    let mut pts: Vec<(f64, Option<f64>)> = Vec::new();
    if !took.is_empty() {
        pts.push((0.0, Some(0.0)));
    }
    for (i, &t) in took.iter().enumerate() {
        pts.push((t as f64, Some((i + 1) as f64 / n as f64)));
    }
    let mut marks = Vec::new();
    for (label, v) in [
        ("p50", rec.report.detection_ms_p50),
        ("p99", rec.report.detection_ms_p99),
    ] {
        if let Some(v) = v {
            marks.push(Mark {
                label: format!("{label} {v} ms"),
                color: if label == "p50" { "#2ca02c" } else { "#d62728" },
                x: v as f64,
                full: true,
            });
        }
    }
    let removed = took.len();
    Plot {
        title: format!("Detection latency ({removed} of {n} crashed peers removed)"),
        x_label: "ms from crash to removal by a seed quorum".into(),
        y_label: "share of crashed peers".into(),
        y_include: vec![0.0, 1.0],
        x_range: took.last().map(|&m| (0.0, (m as f64 * 1.05).max(1.0))),
        lines: vec![Line {
            step: true,
            ..Line::new("removed within", PALETTE[0], pts)
        }],
        marks,
        empty_note: if n == 0 {
            "no peer crashed in this run".into()
        } else {
            "no crashed peer was removed".into()
        },
        ..Plot::default()
    }
}

fn degree_plot(rec: &Recording) -> Plot {
    let hist = &rec.degree_histogram;
    let total: u32 = hist.iter().map(|&(_, n)| n).sum();
    let share = |n: u32| f64::from(n) / f64::from(total.max(1));
    let mut lines = vec![Line {
        dots: true,
        ..Line::new(
            "share of live peers",
            PALETTE[0],
            hist.iter()
                .map(|&(d, n)| (f64::from(d), Some(share(n))))
                .collect(),
        )
    }];
    let d_min = rec.config.min_degree.max(1);
    if let (Some(alpha), Some(&(d_max, _))) = (rec.report.powerlaw_alpha, hist.last()) {
        // The fitted law, scaled to the share of peers at d_min or above.
        let tail: u32 = hist
            .iter()
            .filter(|&&(d, _)| d >= d_min)
            .map(|&(_, n)| n)
            .sum();
        let norm: f64 = (d_min..=d_max.max(d_min))
            .map(|d| f64::from(d).powf(-alpha))
            .sum();
        if norm > 0.0 {
            let pts = (d_min..=d_max.max(d_min))
                .map(|d| {
                    let y = share(tail) * f64::from(d).powf(-alpha) / norm;
                    (f64::from(d), Some(y))
                })
                .collect();
            lines.push(Line {
                dashed: true,
                ..Line::new(format!("power law, alpha {alpha:.2}"), PALETTE[3], pts)
            });
        }
    }
    Plot {
        title: "Degree distribution (final overlay)".into(),
        x_label: "degree (neighbours, log)".into(),
        y_label: "share of live peers (log)".into(),
        log_x: true,
        log_y: true,
        lines,
        empty_note: "no live peer".into(),
        ..Plot::default()
    }
}

fn violations(h: &mut String, rec: &Recording) {
    if rec.report.violations.is_empty() {
        return;
    }
    h.push_str("<h2>Violations (the first ones)</h2><ul>");
    for v in &rec.report.violations {
        let _ = write!(h, "<li>{}</li>", escape(v));
    }
    h.push_str("</ul>");
}

fn settings(h: &mut String, rec: &Recording) {
    let c = &rec.config;
    h.push_str("<h2>Settings</h2><table>");
    row(h, "run seed", &c.seed.to_string());
    row(h, "seeds / peers", &format!("{} / {}", c.seeds, c.peers));
    row(
        h,
        "gossip: messages per peer, interval",
        &format!("{}, {} ms", c.max_gossip, c.gossip_interval_ms),
    );
    row(h, "gossip mode", &rec.report.gossip_mode);
    row(h, "probe interval", &format!("{} ms", c.probe_interval_ms));
    row(h, "minimum degree", &c.min_degree.to_string());
    let (lo, hi) = c.latency_ms;
    let lat = if lo == hi {
        format!("{lo} ms")
    } else {
        format!("{lo}–{hi} ms")
    };
    row(h, "one-way latency", &lat);
    row(h, "peers join over", &format!("{} ms", c.join_window_ms));
    row(h, "faults scheduled", &c.faults.to_string());
    row(h, "faults stop at", &ms(c.heal_at_ms));
    row(h, "promises 6–7 due at", &ms(c.liveness_by_ms));
    if !c.lying_seeds.is_empty() {
        row(h, "lying seeds", &format!("{:?}", c.lying_seeds));
    }
    row(h, "run length", &format!("{} ms", c.end_ms));
    row(h, "checks", if c.checks { "on" } else { "off" });
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Recorder;
    use crate::svg::tests::unbalanced;
    use gossip_driver_sim::{
        Fault, FaultKind, NodeRef, Partition, PartitionKind, Sim, SimConfig, Split,
    };

    /// 3 seeds, 30 peers: two peers crash, a partition comes and goes, messages drop.
    fn faulty() -> SimConfig {
        let mut c = SimConfig::new(5, 3, 30);
        c.settings.max_gossip = 3;
        let fault = |at_ms, kind| Fault { at_ms, kind };
        c.faults = vec![
            fault(4_000, FaultKind::SetDrop(0.05)),
            fault(4_500, FaultKind::Crash(NodeRef::Peer(3))),
            fault(
                5_000,
                FaultKind::Partition(Partition {
                    split: Split::Random {
                        fraction: 0.3,
                        salt: 9,
                    },
                    kind: PartitionKind::Symmetric,
                }),
            ),
            fault(7_000, FaultKind::Crash(NodeRef::Peer(11))),
            fault(9_000, FaultKind::HealPartition),
        ];
        c.heal_at_ms = Some(10_000);
        c.liveness = true;
        c
    }

    fn record(cfg: SimConfig) -> (Recording, u64) {
        let mut sim: Sim = Sim::new(cfg).expect("a valid config");
        let mut rec = Recorder::attach(&mut sim);
        let report = sim.run_observed(100, |s| rec.observe(s));
        let hash = sim.trace_hash();
        (rec.finish(&sim, &report, "sim --test"), hash)
    }

    #[test]
    fn recording_a_run_does_not_change_it() {
        let mut plain: Sim = Sim::new(faulty()).expect("a valid config");
        let r = plain.run();
        let (rec, hash) = record(faulty());
        assert_eq!(hash, plain.trace_hash());
        assert_eq!(rec.report.events, r.events);
        assert_eq!(rec.report.invariant_violations, 0, "{}", r.human());
    }

    #[test]
    fn the_series_has_one_sample_per_second_and_ends_with_the_run() {
        let (rec, _) = record(faulty());
        let s = &rec.series;
        let end_ms = rec.config.end_ms;
        let n = end_ms.div_ceil(1000) as usize;
        assert_eq!(s.t_s.len(), n);
        assert_eq!(s.t_s.last().copied(), Some(end_ms as f64 / 1000.0));
        for len in [
            s.peers_up.len(),
            s.peers_connected.len(),
            s.alive_at_seeds_min.len(),
            s.alive_at_seeds_max.len(),
            s.gossip_generated.len(),
            s.first_deliveries.len(),
            s.owed.len(),
            s.delivered_ratio.len(),
            s.lost_per_s.len(),
        ] {
            assert_eq!(len, n);
        }
        assert!(s.requests_per_s.values().all(|v| v.len() == n));
        // Every peer joined, two crashed and stayed down; the seeds list the 28 left.
        assert_eq!(s.peers_up.iter().max(), Some(&30));
        assert_eq!(s.peers_up.last(), Some(&28));
        assert_eq!(s.alive_at_seeds_max.last(), Some(&Some(28)));
        assert_eq!(
            s.gossip_generated.last(),
            Some(&rec.report.gossip_generated)
        );
        assert!(s.requests_per_s["GOSSIP_MSG"].iter().sum::<f64>() > 0.0);
        assert!(
            s.lost_per_s.iter().sum::<f64>() > 0.0,
            "5 % drop loses some"
        );
        // Two crashes, both detected; the partition and the drop as windows.
        assert_eq!(rec.detection.len(), 2);
        assert!(rec.detection.iter().all(|d| d.removed_after_ms.is_some()));
        let kinds: Vec<_> = rec.timeline.windows.iter().map(|w| w.kind).collect();
        assert_eq!(kinds, vec!["network", "partition"]);
        let held: Vec<_> = rec
            .promises
            .iter()
            .filter(|p| p.judged)
            .map(|p| p.promise)
            .collect();
        assert_eq!(held, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_page_is_balanced_with_a_plot_each_and_only_finite_numbers() {
        let (rec, _) = record(faulty());
        let page = render(&rec);
        assert_eq!(unbalanced(&page), Vec::<String>::new());
        assert_eq!(page.matches("<svg").count(), 7);
        assert_eq!(page.matches("</svg>").count(), 7);
        for bad in ["NaN", "inf", "http://", "https://", "<script"] {
            let hits = page.matches(bad).count();
            // The one URL allowed is the SVG namespace, which browsers never fetch.
            let allowed = if bad == "http://" { 7 } else { 0 };
            assert_eq!(hits, allowed, "{bad} in the page");
        }
        for title in [
            "Peers over time",
            "Gossip delivered so far",
            "Requests per second by type",
            "Detection latency (2 of 2 crashed peers removed)",
            "Degree distribution",
            "Gossip coverage (",
            "Hops of first-time deliveries (",
            "<title>median over gossips</title></path>",
            "<title>worst gossip</title></path>",
            "<title>first-time deliveries: ",
            "partition",
            "peer crash",
        ] {
            assert!(page.contains(title), "no {title}");
        }
        assert!(page.contains("All 7 promises judged held."));
        // The same run gives the same page.
        assert_eq!(render(&record(faulty()).0), page);
    }

    #[test]
    fn the_json_has_the_report_and_the_series() {
        let (rec, _) = record(faulty());
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&rec).expect("serialises"))
                .expect("parses");
        let n = rec.series.t_s.len();
        assert_eq!(v["trace_hash"], rec.report.trace_hash.as_str());
        assert_eq!(v["series"]["peers_up"].as_array().map(Vec::len), Some(n));
        assert_eq!(
            v["series"]["requests_per_s"]["PING"]
                .as_array()
                .map(Vec::len),
            Some(n)
        );
        assert_eq!(v["promises"].as_array().map(Vec::len), Some(9));
        let points = rec.coverage.t_ms.len();
        assert!(points > 1 && points <= crate::series::COVERAGE_POINTS);
        for key in ["t_ms", "median", "worst"] {
            assert_eq!(
                v["coverage"][key].as_array().map(Vec::len),
                Some(points),
                "{key}"
            );
        }
        assert_eq!(
            v["hops_histogram"].as_array().map(Vec::len),
            Some(rec.report.hops_max as usize + 1)
        );
        assert_eq!(v["detection"].as_array().map(Vec::len), Some(2));
    }

    /// The coverage curves and the hops histogram agree with the run's own counts.
    fn check_spread(rec: &Recording) {
        let c = &rec.coverage;
        let r = &rec.report;
        // A small run follows every gossip; those counted are owed exactly what the report
        // says (one overlay component at the end: its restriction to the origin's changes
        // nothing).
        assert_eq!(c.gossips_made, r.gossip_generated);
        assert_eq!(c.gossips_sampled, c.gossips_made);
        assert!(c.gossips_counted > 0 && c.gossips_counted <= c.gossips_made);
        assert_eq!((c.delivered, c.owed), (r.delivered, r.owed));
        // Every first-time delivery has its bar.
        let hops: u64 = rec.hops_histogram.iter().sum();
        assert_eq!(Some(&hops), rec.series.first_deliveries.last());
        assert_eq!(rec.hops_histogram.len(), r.hops_max as usize + 1);
        assert!(rec.hops_histogram.last().is_some_and(|&n| n > 0));
        // The curves: one value per offset, offsets rising, shares rising and between 0
        // and 1, the worst never above the median, and they end at the final shares.
        let n = c.t_ms.len();
        assert_eq!((c.median.len(), c.worst.len()), (n, n));
        assert!(c.t_ms.windows(2).all(|w| w[0] < w[1]));
        for v in [&c.median, &c.worst] {
            assert!(v.windows(2).all(|w| w[0] <= w[1]));
            assert!(v.iter().all(|&y| (0.0..=1.0).contains(&y)));
        }
        assert!(c.worst.iter().zip(&c.median).all(|(w, m)| w <= m));
        assert_eq!(c.median.last().copied(), c.final_median);
        assert_eq!(c.worst.last().copied(), c.final_worst);
        // The share delivered over all is the owed-weighted mean of the gossips' final
        // shares: it lies between the worst and the best.
        let ratio = r.delivered as f64 / r.owed as f64;
        let worst = c.final_worst.expect("gossips counted");
        assert!(worst <= ratio + 1e-12, "worst {worst}, delivered {ratio}");
        // The times read off agree with the curves.
        for (curve, q, at) in [
            (&c.median, 0.5, c.median_50_ms),
            (&c.median, 0.99, c.median_99_ms),
            (&c.worst, 0.5, c.worst_50_ms),
            (&c.worst, 0.99, c.worst_99_ms),
        ] {
            for (&t, &y) in c.t_ms.iter().zip(curve) {
                assert_eq!(y >= q, at.is_some_and(|a| t >= a), "{q} at {t} ms: {y}");
            }
        }
    }

    #[test]
    fn the_coverage_and_the_hops_agree_with_the_delivery_counts() {
        let (rec, _) = record(faulty());
        check_spread(&rec);
        let mut c = SimConfig::new(4, 3, 40);
        c.settings.max_gossip = 2;
        let (rec, _) = record(c);
        check_spread(&rec);
        // Without faults every gossip reaches every peer owed it, within a few hops.
        let c = &rec.coverage;
        assert_eq!(c.gossips_counted, 80);
        assert_eq!((c.final_median, c.final_worst), (Some(1.0), Some(1.0)));
        assert_eq!(rec.report.delivered_ratio, 1.0);
        assert!(c.median_99_ms.is_some() && c.worst_99_ms >= c.median_99_ms);
        assert!(!c.log_t, "deliveries within a few latencies");
        assert_eq!(c.t_ms.first(), Some(&0));
        assert_eq!(
            rec.hops_histogram.first(),
            Some(&0),
            "nobody gets it 0 links away"
        );
    }

    #[test]
    fn a_long_tail_of_coverage_is_drawn_on_a_log_axis() {
        let mut c = SimConfig::new(4, 3, 20);
        c.settings.max_gossip = 1;
        let (mut rec, _) = record(c);
        // A tail out to 10 s, as repair after a partition would make.
        let cov = &mut rec.coverage;
        cov.log_t = true;
        cov.t_ms = vec![5, 50, 500, 10_000];
        cov.median = vec![0.1, 0.9, 0.95, 1.0];
        cov.worst = vec![0.0, 0.5, 0.8, 1.0];
        cov.worst_99_ms = Some(10_000);
        let svg = coverage_plot(&rec).render();
        assert!(svg.contains("ms since the gossip was made (log)"));
        for tick in [">1<", ">10<", ">100<", ">1000<", ">10k<"] {
            assert!(svg.contains(tick), "no tick {tick}");
        }
        assert!(svg.contains("worst 99 % at 10000 ms"));
        assert_eq!(unbalanced(&svg), Vec::<String>::new());
    }

    #[test]
    fn a_run_without_gossip_says_so() {
        let mut cfg = SimConfig::new(2, 3, 12);
        cfg.settings.max_gossip = 0;
        let mut sim: Sim = Sim::new(cfg).expect("a valid config");
        let mut rec = Recorder::attach(&mut sim);
        let report = sim.run_observed(100, |s| rec.observe(s));
        let rec = rec.finish(&sim, &report, "");
        assert!(rec.coverage.t_ms.is_empty() && rec.hops_histogram.is_empty());
        let page = render(&rec);
        assert!(page.contains("no gossip delivered"));
        assert_eq!(unbalanced(&page), Vec::<String>::new());
    }

    #[test]
    fn a_run_without_crashes_says_so_in_its_detection_plot() {
        let mut c = SimConfig::new(2, 3, 12);
        c.settings.max_gossip = 2;
        let (rec, _) = record(c);
        let page = render(&rec);
        assert!(page.contains("no peer crashed in this run"));
        assert_eq!(unbalanced(&page), Vec::<String>::new());
        assert!(rec.timeline.windows.is_empty());
    }
}
