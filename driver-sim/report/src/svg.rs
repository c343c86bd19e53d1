//! Line plots as inline SVG, for the HTML report: titled axes with "nice" ticks (linear or
//! log), lines with gaps, shaded time windows, marks on the time axis and a legend. No
//! scripts, no fonts or files from elsewhere: the text is plain SVG a browser draws as is.
//!
//! Every number written is finite: points that are not are dropped (a gap in the line), and
//! an empty plot says so in words instead of drawing axes over nothing.

use std::fmt::Write as _;

const WIDTH: f64 = 920.0;
const PLOT_HEIGHT: f64 = 250.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 40.0;
/// Below the plot area: tick labels and the x axis title.
const BELOW: f64 = 52.0;
const LEGEND_ROW: f64 = 20.0;
/// About this many ticks on a linear axis.
const TICKS: usize = 6;
/// At most this many points are drawn per line; longer lines are averaged in buckets.
pub const MAX_POINTS: usize = 1_000;

/// One line of a plot. `y` is `None` where there is nothing to draw (a gap).
#[derive(Clone, Debug)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// A CSS colour.
    pub color: &'static str,
    /// `(x, y)` in data units, x ascending.
    pub points: Vec<(f64, Option<f64>)>,
    /// Drawn dashed.
    pub dashed: bool,
    /// Drawn as steps (the value holds until the next point), e.g. a CDF.
    pub step: bool,
    /// Dots at the points instead of a line.
    pub dots: bool,
    /// Bars from the foot of the y axis (or 0) up to the points instead of a line, e.g. a
    /// histogram.
    pub bars: bool,
}

impl Line {
    /// A solid line.
    pub fn new(
        label: impl Into<String>,
        color: &'static str,
        points: Vec<(f64, Option<f64>)>,
    ) -> Line {
        Line {
            label: label.into(),
            color,
            points,
            dashed: false,
            step: false,
            dots: false,
            bars: false,
        }
    }
}

/// A shaded stretch of the x axis (a fault window). Bands with the same label share one
/// legend entry.
#[derive(Clone, Debug)]
pub struct Band {
    /// Legend text.
    pub label: String,
    /// A CSS colour (drawn translucent).
    pub color: &'static str,
    /// Start and end, in x data units.
    pub from: f64,
    /// End.
    pub to: f64,
}

/// A moment on the x axis: a tick under the plot area (`full`: a dashed line across it).
/// Marks with the same label share one legend entry.
#[derive(Clone, Debug)]
pub struct Mark {
    /// Legend text.
    pub label: String,
    /// A CSS colour.
    pub color: &'static str,
    /// Where, in x data units.
    pub x: f64,
    /// Drawn across the plot area rather than as a tick at its foot.
    pub full: bool,
}

/// A plot: axes, lines, bands, marks.
#[derive(Clone, Debug, Default)]
pub struct Plot {
    /// Title above the plot.
    pub title: String,
    /// X axis title, with its unit.
    pub x_label: String,
    /// Y axis title, with its unit.
    pub y_label: String,
    /// Logarithmic y axis (values ≤ 0 are gaps).
    pub log_y: bool,
    /// Logarithmic x axis (values ≤ 0 are dropped).
    pub log_x: bool,
    /// Fixed x range (default: the data's, bands' and marks').
    pub x_range: Option<(f64, f64)>,
    /// The y range must include these (e.g. 0 and 1 for a share).
    pub y_include: Vec<f64>,
    /// The lines.
    pub lines: Vec<Line>,
    /// Shaded windows, drawn under the lines.
    pub bands: Vec<Band>,
    /// Moments on the x axis.
    pub marks: Vec<Mark>,
    /// Said in the plot area when there is nothing to draw.
    pub empty_note: String,
}

/// Values of a tick axis: the data range mapped to pixels.
#[derive(Copy, Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    px0: f64,
    px1: f64,
}

impl Axis {
    fn map(&self, v: f64) -> f64 {
        let (v, lo, hi) = if self.log {
            (v.log10(), self.lo.log10(), self.hi.log10())
        } else {
            (v, self.lo, self.hi)
        };
        self.px0 + (v - lo) / (hi - lo) * (self.px1 - self.px0)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            log_ticks(self.lo, self.hi)
        } else {
            nice_ticks(self.lo, self.hi, TICKS)
        }
    }
}

/// Ticks at 1, 2 or 5 × 10^k covering `[lo, hi]`, about `n` of them.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return Vec::new();
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    // A hair of slack: 1.2 / 0.2 is 5.999… in floating point.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Powers of ten covering `[lo, hi]` (both > 0).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    (a..=b).map(|e| 10f64.powi(e)).collect()
}

/// A tick label: whole numbers with k/M for thousands and millions, else as few decimals
/// as the tick step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let a = v.abs();
    if a >= 1e6 && (v / 1e6).fract().abs() < 1e-9 {
        format!("{}M", v / 1e6)
    } else if a >= 1e4 && (v / 1e3).fract().abs() < 1e-9 {
        format!("{}k", v / 1e3)
    } else if step >= 1.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10()).ceil().clamp(0.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// `s` with the characters XML gives meaning to escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` points: longer runs of points are averaged in equal buckets (a bucket with
/// no value is a gap).
pub fn thin(points: &[(f64, Option<f64>)], max: usize) -> Vec<(f64, Option<f64>)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            let x = c[c.len() - 1].0;
            let ys: Vec<f64> = c.iter().filter_map(|p| p.1).collect();
            let y = (!ys.is_empty()).then(|| ys.iter().sum::<f64>() / ys.len() as f64);
            (x, y)
        })
        .collect()
}

impl Plot {
    fn usable(&self, x: f64, y: Option<f64>) -> Option<(f64, f64)> {
        let y = y?;
        let ok =
            x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0) && (!self.log_x || x > 0.0);
        ok.then_some((x, y))
    }

    /// The legend: `(label, colour, kind)` once per label, lines first.
    fn legend(&self) -> Vec<(String, &'static str, &'static str)> {
        let mut out: Vec<(String, &'static str, &'static str)> = Vec::new();
        let mut add = |label: &str, color, kind| {
            if !label.is_empty() && !out.iter().any(|(l, _, _)| l == label) {
                out.push((label.to_string(), color, kind));
            }
        };
        for l in &self.lines {
            add(
                &l.label,
                l.color,
                if l.dots {
                    "dot"
                } else if l.bars {
                    "bar"
                } else if l.dashed {
                    "dash"
                } else {
                    "line"
                },
            );
        }
        for b in &self.bands {
            add(&b.label, b.color, "band");
        }
        for m in &self.marks {
            add(&m.label, m.color, if m.full { "dash" } else { "tick" });
        }
        out
    }

    /// The plot as an `<svg>` element.
    pub fn render(&self) -> String {
        let lines: Vec<Vec<(f64, Option<f64>)>> = self
            .lines
            .iter()
            .map(|l| {
                let pts: Vec<_> = l
                    .points
                    .iter()
                    .map(|&(x, y)| (x, self.usable(x, y).map(|p| p.1)))
                    .collect();
                let pts: Vec<_> = pts
                    .into_iter()
                    .filter(|(x, _)| x.is_finite() && (!self.log_x || *x > 0.0))
                    .collect();
                thin(&pts, MAX_POINTS)
            })
            .collect();
        let values: Vec<(f64, f64)> = lines
            .iter()
            .flatten()
            .filter_map(|&(x, y)| Some((x, y?)))
            .collect();
        let legend = self.legend();
        let rows = legend_rows(&legend);
        let height = TOP + PLOT_HEIGHT + BELOW + LEGEND_ROW * rows.len() as f64 + 8.0;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="sans-serif" font-size="12" role="img" aria-label="{t}">"#,
            t = escape(&self.title)
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="22" font-size="15" font-weight="bold">{}</text>"#,
            LEFT,
            escape(&self.title)
        );
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (TOP + PLOT_HEIGHT, TOP);
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="{y1:.1}" width="{:.1}" height="{PLOT_HEIGHT:.1}" fill="#fcfcfc" stroke="#999"/>"##,
            x1 - x0
        );
        let x_extent = self.x_range.or_else(|| {
            let xs = values
                .iter()
                .map(|p| p.0)
                .chain(self.bands.iter().flat_map(|b| [b.from, b.to]))
                .chain(self.marks.iter().map(|m| m.x))
                .filter(|x| x.is_finite() && (!self.log_x || *x > 0.0));
            extent(xs)
        });
        let y_extent = extent(
            values.iter().map(|p| p.1).chain(
                self.y_include
                    .iter()
                    .copied()
                    .filter(|y| !self.log_y || *y > 0.0),
            ),
        );
        let (Some(xe), Some(ye)) = (x_extent, y_extent) else {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#666">{}</text>"##,
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0,
                escape(&self.empty_note)
            );
            s.push_str("</svg>");
            return s;
        };
        let (xlo, xhi) = widen(xe, self.log_x);
        let (xlo, xhi) = if self.log_x {
            (
                10f64.powf(xlo.log10().floor()),
                10f64.powf(xhi.log10().ceil()),
            )
        } else {
            (xlo, xhi)
        };
        let xa = Axis {
            lo: xlo,
            hi: xhi,
            log: self.log_x,
            px0: x0,
            px1: x1,
        };
        let (ylo, yhi) = widen(ye, self.log_y);
        let (ylo, yhi) = if self.log_y {
            (
                10f64.powf(ylo.log10().floor()),
                10f64.powf(yhi.log10().ceil()),
            )
        } else {
            let t = nice_ticks(ylo, yhi, TICKS);
            let step = tick_step(&t);
            ((ylo / step).floor() * step, (yhi / step).ceil() * step)
        };
        let ya = Axis {
            lo: ylo,
            hi: yhi,
            log: self.log_y,
            px0: y0,
            px1: y1,
        };
        // Bands under everything else.
        for b in &self.bands {
            let (a, z) = (b.from.max(xa.lo), b.to.min(xa.hi));
            if !(a.is_finite() && z.is_finite()) || z <= a {
                continue;
            }
            let (pa, pz) = (xa.map(a), xa.map(z));
            let _ = write!(
                s,
                r#"<rect x="{pa:.1}" y="{y1:.1}" width="{:.1}" height="{PLOT_HEIGHT:.1}" fill="{}" fill-opacity="0.18"><title>{}</title></rect>"#,
                (pz - pa).max(0.5),
                b.color,
                escape(&b.label)
            );
        }
        // Grid and ticks.
        let xt = xa.ticks();
        let xstep = tick_step(&xt);
        for &t in &xt {
            let xstep = if xa.log { t } else { xstep };
            let px = xa.map(t);
            let _ = write!(
                s,
                r##"<line x1="{px:.1}" y1="{y0:.1}" x2="{px:.1}" y2="{y1:.1}" stroke="#e4e4e4"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + 16.0,
                tick_label(t, xstep)
            );
        }
        let yt = ya.ticks();
        let ystep = tick_step(&yt);
        for &t in &yt {
            let ystep = if ya.log { t } else { ystep };
            let py = ya.map(t);
            let _ = write!(
                s,
                r##"<line x1="{x0:.1}" y1="{py:.1}" x2="{x1:.1}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 6.0,
                py + 4.0,
                tick_label(t, ystep)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            y0 + 38.0,
            escape(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            escape(&self.y_label)
        );
        // Marks.
        for m in &self.marks {
            if !(m.x.is_finite() && m.x >= xa.lo && m.x <= xa.hi) {
                continue;
            }
            let px = xa.map(m.x);
            let (top, dash) = if m.full {
                (y1, r#" stroke-dasharray="6 4""#)
            } else {
                (y0 - 10.0, "")
            };
            let _ = write!(
                s,
                r#"<line x1="{px:.1}" y1="{y0:.1}" x2="{px:.1}" y2="{top:.1}" stroke="{}" stroke-width="1.5"{dash}><title>{}</title></line>"#,
                m.color,
                escape(&m.label)
            );
        }
        // Lines, clipped to the plot area by clamping.
        for (l, pts) in self.lines.iter().zip(&lines) {
            let map = |(x, y): (f64, f64)| (xa.map(x), ya.map(y).clamp(y1, y0));
            if l.dots {
                for &(x, y) in pts {
                    if let Some(y) = y {
                        let (px, py) = map((x, y));
                        let _ = write!(
                            s,
                            r#"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{}"/>"#,
                            l.color
                        );
                    }
                }
                continue;
            }
            if l.bars {
                bars(&mut s, l, pts, &xa, &ya);
                continue;
            }
            let mut d = String::new();
            let mut pen = false;
            for &(x, y) in pts {
                let Some(y) = y else {
                    pen = false;
                    continue;
                };
                let (px, py) = map((x, y));
                if !pen {
                    let _ = write!(d, "M{px:.1} {py:.1}");
                    pen = true;
                } else if l.step {
                    let _ = write!(d, "H{px:.1}V{py:.1}");
                } else {
                    let _ = write!(d, "L{px:.1} {py:.1}");
                }
            }
            if d.is_empty() {
                continue;
            }
            let dash = if l.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.8"{dash}><title>{}</title></path>"#,
                l.color,
                escape(&l.label)
            );
        }
        // Legend.
        let mut y = y0 + BELOW + 6.0;
        for row in rows {
            let mut x = LEFT;
            for (label, color, kind) in row {
                let sym = match kind {
                    "bar" => format!(
                        r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{color}" fill-opacity="0.8"/>"#,
                        x + 4.0,
                        y - 9.0
                    ),
                    "band" => format!(
                        r#"<rect x="{x:.1}" y="{:.1}" width="18" height="10" fill="{color}" fill-opacity="0.3"/>"#,
                        y - 9.0
                    ),
                    "dot" => format!(
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                        x + 9.0,
                        y - 4.0
                    ),
                    "tick" => format!(
                        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5"/>"#,
                        x + 9.0,
                        y - 10.0,
                        x + 9.0,
                        y
                    ),
                    "dash" => format!(
                        r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.8" stroke-dasharray="6 4"/>"#,
                        y - 4.0,
                        x + 18.0,
                        y - 4.0
                    ),
                    _ => format!(
                        r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2.5"/>"#,
                        y - 4.0,
                        x + 18.0,
                        y - 4.0
                    ),
                };
                s.push_str(&sym);
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
                    x + 24.0,
                    escape(&label)
                );
                x += legend_width(&label);
            }
            y += LEGEND_ROW;
        }
        s.push_str("</svg>");
        s
    }
}

/// The points of `l` as bars: each as wide as 80 % of the narrowest gap between points (at
/// most 60 px), from the foot of the plot (0 if the y axis shows it) up to the value.
fn bars(s: &mut String, l: &Line, pts: &[(f64, Option<f64>)], xa: &Axis, ya: &Axis) {
    let px: Vec<f64> = pts.iter().map(|&(x, _)| xa.map(x)).collect();
    let gap = px
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|g| *g > 0.0)
        .fold(f64::INFINITY, f64::min);
    let width = (gap * 0.8).clamp(1.0, 60.0);
    let base = if !ya.log && ya.lo <= 0.0 && ya.hi >= 0.0 {
        ya.map(0.0)
    } else {
        ya.px0
    };
    let (top, foot) = (ya.px1, ya.px0);
    for (&x, &(xv, y)) in px.iter().zip(pts) {
        let Some(y) = y else { continue };
        let py = ya.map(y).clamp(top, foot);
        let (a, z) = (py.min(base), py.max(base));
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{a:.1}" width="{width:.1}" height="{:.1}" fill="{}" fill-opacity="0.8"><title>{}: {} at {}</title></rect>"#,
            x - width / 2.0,
            z - a,
            l.color,
            escape(&l.label),
            tick_label(y, 1.0),
            tick_label(xv, 1.0)
        );
    }
}

fn legend_width(label: &str) -> f64 {
    40.0 + 8.0 * label.chars().count() as f64
}

/// The legend entries laid out in rows that fit the plot's width.
fn legend_rows(
    items: &[(String, &'static str, &'static str)],
) -> Vec<Vec<(String, &'static str, &'static str)>> {
    let mut rows: Vec<Vec<_>> = Vec::new();
    let mut used = f64::INFINITY;
    for it in items {
        let w = legend_width(&it.0);
        if used + w > WIDTH - LEFT - RIGHT {
            rows.push(Vec::new());
            used = 0.0;
        }
        used += w;
        if let Some(r) = rows.last_mut() {
            r.push(it.clone());
        }
    }
    rows
}

fn tick_step(ticks: &[f64]) -> f64 {
    match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    }
}

fn extent(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((a, b)) => Some((a.min(v), b.max(v))),
        })
}

/// A range with room: a single value becomes a range around it.
fn widen((lo, hi): (f64, f64), log: bool) -> (f64, f64) {
    if hi > lo {
        return (lo, hi);
    }
    if log {
        (lo / 10.0, hi * 10.0)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        let d = lo.abs() * 0.1;
        (lo - d, hi + d)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The element names of `xml` that are opened and not closed, or closed without being
    /// open, in order: empty for balanced markup. Void HTML elements (`meta`) and
    /// self-closing tags count as closed; comments and `<!DOCTYPE>` are skipped.
    pub(crate) fn unbalanced(xml: &str) -> Vec<String> {
        const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
        let mut open: Vec<String> = Vec::new();
        let mut bad = Vec::new();
        let mut rest = xml;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let Some(end) = rest.find('>') else {
                bad.push("unterminated tag".to_string());
                break;
            };
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(o) if o == name.trim() => {}
                    other => bad.push(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("").to_string();
                if !VOID.contains(&name.as_str()) {
                    open.push(name);
                }
            }
        }
        bad.extend(open);
        bad
    }

    fn sample() -> Plot {
        Plot {
            title: "Peers <up> & alive".into(),
            x_label: "simulated time (s)".into(),
            y_label: "peers".into(),
            lines: vec![Line::new(
                "up",
                "#1f77b4",
                vec![
                    (0.0, Some(0.0)),
                    (1.0, Some(5.0)),
                    (2.0, None),
                    (3.0, Some(f64::NAN)),
                    (4.0, Some(9.0)),
                ],
            )],
            bands: vec![Band {
                label: "partition".into(),
                color: "#d62728",
                from: 1.5,
                to: 2.5,
            }],
            marks: vec![Mark {
                label: "peer crash".into(),
                color: "#000",
                x: 3.0,
                full: false,
            }],
            empty_note: "nothing".into(),
            ..Plot::default()
        }
    }

    #[test]
    fn bars_stand_on_zero_one_per_value() {
        let p = Plot {
            title: "hops".into(),
            x_label: "hops".into(),
            y_label: "deliveries".into(),
            y_include: vec![0.0],
            x_range: Some((0.5, 4.5)),
            lines: vec![Line {
                bars: true,
                ..Line::new(
                    "deliveries",
                    "#1f77b4",
                    vec![
                        (1.0, Some(3.0)),
                        (2.0, Some(10.0)),
                        (3.0, None),
                        (4.0, Some(0.0)),
                    ],
                )
            }],
            ..Plot::default()
        };
        let svg = p.render();
        assert_eq!(unbalanced(&svg), Vec::<String>::new());
        let bars: Vec<&str> = svg
            .split("<rect ")
            .filter(|r| r.contains("<title>deliveries: "))
            .collect();
        assert_eq!(bars.len(), 3, "{svg}");
        let attr = |r: &str, k: &str| -> f64 {
            let from = r.find(&format!(" {k}=\"")).expect("attribute") + k.len() + 3;
            r[from..]
                .split('"')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("a number")
        };
        // All end on the zero line; the taller count is the taller bar; 0 is flat.
        let feet: Vec<f64> = bars
            .iter()
            .map(|r| attr(r, "y") + attr(r, "height"))
            .collect();
        assert!(feet.iter().all(|f| (f - feet[0]).abs() < 0.2), "{feet:?}");
        assert!(attr(bars[1], "height") > attr(bars[0], "height"));
        assert!(attr(bars[2], "height") < 0.2);
        // The legend shows a bar.
        assert!(svg.contains(r#"width="10" height="10""#));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_plot_is_balanced_svg_with_only_finite_numbers() {
        let s = sample().render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert_eq!(unbalanced(&s), Vec::<String>::new());
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
        // The title is escaped, the gap splits the line in two pieces.
        assert!(s.contains("Peers &lt;up&gt; &amp; alive"));
        let path = s.split("<path d=\"").nth(1).expect("a path");
        assert_eq!(path.split('"').next().unwrap_or("").matches('M').count(), 2);
        for label in [
            "up",
            "partition",
            "peer crash",
            "simulated time (s)",
            "peers",
        ] {
            assert!(s.contains(&format!(">{label}<")), "no {label}");
        }
    }

    #[test]
    fn an_empty_plot_says_so() {
        let p = Plot {
            title: "t".into(),
            empty_note: "no peer crashed".into(),
            ..Plot::default()
        };
        let s = p.render();
        assert!(s.contains("no peer crashed"));
        assert_eq!(unbalanced(&s), Vec::<String>::new());
        let p = Plot {
            lines: vec![Line::new("x", "#000", vec![(1.0, Some(f64::INFINITY))])],
            empty_note: "empty".into(),
            ..Plot::default()
        };
        assert!(p.render().contains("empty"));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(
            nice_ticks(0.0, 113.3, 6),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        // 1.2 / 6 is a hair above 0.2 in floating point: still steps of 0.2.
        assert_eq!(nice_ticks(0.0, 1.2, 6).len(), 7);
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
        assert!(nice_ticks(0.0, f64::NAN, 5).is_empty());
        assert_eq!(log_ticks(3.0, 2_000.0), vec![10.0, 100.0, 1_000.0]);
        assert!(log_ticks(0.0, 10.0).is_empty());
        assert_eq!(tick_label(20_000.0, 5_000.0), "20k");
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(2_000_000.0, 1e6), "2M");
        assert_eq!(tick_label(40.0, 20.0), "40");
    }

    #[test]
    fn log_axes_drop_what_they_cannot_show() {
        let p = Plot {
            log_y: true,
            lines: vec![Line::new(
                "x",
                "#000",
                vec![(0.0, Some(0.0)), (1.0, Some(10.0)), (2.0, Some(1_000.0))],
            )],
            ..Plot::default()
        };
        let s = p.render();
        assert_eq!(unbalanced(&s), Vec::<String>::new());
        assert!(s.contains(">10<") && s.contains(">1000<") || s.contains(">1k<"));
        assert!(!s.contains("NaN") && !s.contains("inf"));
    }

    #[test]
    fn long_lines_are_thinned_by_averaging() {
        let pts: Vec<_> = (0..10).map(|i| (i as f64, Some(i as f64))).collect();
        let t = thin(&pts, 5);
        assert_eq!(
            t,
            vec![
                (1.0, Some(0.5)),
                (3.0, Some(2.5)),
                (5.0, Some(4.5)),
                (7.0, Some(6.5)),
                (9.0, Some(8.5))
            ]
        );
        let gaps = vec![(0.0, None), (1.0, None), (2.0, Some(4.0))];
        assert_eq!(thin(&gaps, 2), vec![(1.0, None), (2.0, Some(4.0))]);
        assert_eq!(thin(&pts, 100), pts);
    }

    #[test]
    fn the_legend_wraps_and_names_each_label_once() {
        let mut p = sample();
        p.bands.push(Band {
            label: "partition".into(),
            color: "#d62728",
            from: 3.0,
            to: 3.5,
        });
        for i in 0..12 {
            p.lines.push(Line::new(
                format!("a rather long series name {i}"),
                "#333",
                vec![(1.0, Some(1.0))],
            ));
        }
        let s = p.render();
        assert_eq!(s.matches(">partition</text>").count(), 1);
        assert_eq!(unbalanced(&s), Vec::<String>::new());
        assert!(legend_rows(&p.legend()).len() > 1);
    }
}
