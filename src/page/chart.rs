//! Stacked bar charts as inline SVG: counts per time bucket, one colour
//! per series, drawn in a fixed `viewBox` that scales to any width. Each
//! bar segment carries a `<title>` (the tooltip) with its time, series and
//! count; the legend is HTML beside the SVG so it wraps on a phone.

use std::fmt::Write;

use super::esc;

/// Colours of the series in order (Okabe-Ito, then greys): told apart
/// by people with the common colour-vision deficiencies, and in print.
const PALETTE: [&str; 9] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
    "#999999",
];

/// The most series drawn; the rest are summed into "other".
pub const MAX_SERIES: usize = PALETTE.len();

const W: f64 = 960.0;
const H: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 30.0;

/// Counts per time bucket, stacked by series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub id: String,
    pub title: String,
    /// Start of each bucket (µs since the epoch), ascending.
    pub buckets: Vec<i64>,
    pub bucket_us: i64,
    /// Name and one count per bucket, largest total first.
    pub series: Vec<(String, Vec<u64>)>,
}

impl Chart {
    /// Sums `(bucket index, series, count)` into a chart, keeping the
    /// largest series and summing the others into "other".
    pub fn stack(
        id: &str,
        title: &str,
        buckets: Vec<i64>,
        bucket_us: i64,
        counts: impl IntoIterator<Item = (usize, String, u64)>,
    ) -> Self {
        let mut by_series: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for (i, name, n) in counts {
            let row = by_series
                .entry(name)
                .or_insert_with(|| vec![0; buckets.len()]);
            if let Some(slot) = row.get_mut(i) {
                *slot += n;
            }
        }
        let mut series: Vec<(String, Vec<u64>)> = by_series.into_iter().collect();
        series.sort_by_key(|(name, v)| (std::cmp::Reverse(v.iter().sum::<u64>()), name.clone()));
        if series.len() > MAX_SERIES {
            let rest = series.split_off(MAX_SERIES - 1);
            let mut other = vec![0; buckets.len()];
            for (_, v) in rest {
                for (o, n) in other.iter_mut().zip(v) {
                    *o += n;
                }
            }
            series.push(("other".into(), other));
        }
        Self {
            id: id.into(),
            title: title.into(),
            buckets,
            bucket_us,
            series,
        }
    }

    pub fn total(&self) -> u64 {
        self.series.iter().flat_map(|(_, v)| v).sum()
    }

    /// The chart as a `<figure>`: the SVG and its legend.
    pub fn render(&self, out: &mut String) {
        let _ = write!(
            out,
            "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption>",
            esc(&self.id),
            esc(&self.title)
        );
        if self.total() == 0 {
            out.push_str("<p class=\"empty\">Nothing to draw.</p></figure>");
            return;
        }
        let _ = write!(
            out,
            "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" preserveAspectRatio=\"none\">",
            esc(&self.title)
        );
        let stacks: Vec<u64> = (0..self.buckets.len())
            .map(|i| self.series.iter().map(|(_, v)| v[i]).sum())
            .collect();
        // Gridlines at whole steps of 1, 2 or 5 times a power of ten,
        // about four of them.
        let max = stacks.iter().copied().max().unwrap_or(1).max(1);
        let step = nice_ceiling(max.div_ceil(4));
        let top = step * max.div_ceil(step);
        let plot_h = H - TOP - BOTTOM;
        let y = |n: f64| TOP + plot_h * (1.0 - n / top as f64);
        for k in 0..=top / step {
            let v = (k * step) as f64;
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y(v) + 4.0,
                short_count(v as u64),
                y = y(v),
            );
        }
        let n = self.buckets.len().max(1) as f64;
        let slot = (W - LEFT - RIGHT) / n;
        let bar = (slot * 0.85).max(1.0);
        for (i, &start) in self.buckets.iter().enumerate() {
            let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
            let mut base = 0u64;
            for (s, (name, v)) in self.series.iter().enumerate() {
                if v[i] == 0 {
                    continue;
                }
                let (y0, y1) = (y(base as f64), y((base + v[i]) as f64));
                base += v[i];
                let _ = write!(
                    out,
                    "<rect x=\"{x:.2}\" y=\"{y1:.2}\" width=\"{bar:.2}\" height=\"{:.2}\" fill=\"{}\">\
                     <title>{} {}: {}</title></rect>",
                    (y0 - y1).max(0.5),
                    PALETTE[s % PALETTE.len()],
                    esc(&bucket_label(start, self.bucket_us)),
                    esc(name),
                    v[i]
                );
            }
        }
        for i in tick_indices(self.buckets.len(), 6) {
            let x = LEFT + slot * (i as f64 + 0.5);
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                H - 10.0,
                esc(&axis_label(self.buckets[i], self.span_us()))
            );
        }
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/></svg>",
            W - RIGHT,
            y(0.0),
            y(0.0)
        );
        out.push_str("<ul class=\"legend\">");
        for (s, (name, v)) in self.series.iter().enumerate() {
            let _ = write!(
                out,
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{} ({})</li>",
                PALETTE[s % PALETTE.len()],
                esc(name),
                v.iter().sum::<u64>()
            );
        }
        out.push_str("</ul></figure>");
    }

    fn span_us(&self) -> i64 {
        match (self.buckets.first(), self.buckets.last()) {
            (Some(a), Some(b)) => b - a + self.bucket_us,
            _ => 0,
        }
    }
}

/// The bucket width (µs) that cuts `span_us` into at most `max` buckets:
/// the smallest of 1, 5, 15, 30 minutes, 1, 3, 6, 12 hours, 1, 7 days.
pub fn bucket_width(span_us: i64, max: usize) -> i64 {
    const MIN: i64 = 60_000_000;
    const WIDTHS: [i64; 10] = [
        MIN,
        5 * MIN,
        15 * MIN,
        30 * MIN,
        60 * MIN,
        180 * MIN,
        360 * MIN,
        720 * MIN,
        1440 * MIN,
        7 * 1440 * MIN,
    ];
    WIDTHS
        .iter()
        .copied()
        .find(|w| span_us / w < max as i64)
        .unwrap_or(WIDTHS[WIDTHS.len() - 1])
}

/// 1, 2 or 5 times a power of ten, at or above `n` (at least 1).
fn nice_ceiling(n: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= n.max(1) {
                return m * p;
            }
        }
        p *= 10;
    }
}

fn short_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{}k", trim(n as f64 / 1e3)),
        _ => format!("{}M", trim(n as f64 / 1e6)),
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// At most `max` evenly spread indices into `n` items, first and last
/// included when there is room.
fn tick_indices(n: usize, max: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(max).max(1);
    (0..n).step_by(step).collect()
}

fn time(us: i64, fmt: &str) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format(fmt).to_string())
        .unwrap_or_default()
}

/// An x-axis label: the time of day over a day or less, else the date.
fn axis_label(us: i64, span_us: i64) -> String {
    const DAY: i64 = 86_400_000_000;
    match span_us {
        ..=DAY => time(us, "%H:%M"),
        _ if span_us <= 4 * DAY => time(us, "%m-%d %H:%M"),
        _ => time(us, "%Y-%m-%d"),
    }
}

/// A tooltip's time: the bucket's start and end, UTC.
fn bucket_label(start: i64, width: i64) -> String {
    format!(
        "{}–{} UTC",
        time(start, "%Y-%m-%d %H:%M"),
        time(start + width, "%H:%M")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn widths_and_ceilings() {
        assert_eq!(bucket_width(30 * MIN, 96), MIN);
        assert_eq!(bucket_width(23 * 60 * MIN, 96), 15 * MIN);
        assert_eq!(bucket_width(24 * 60 * MIN, 96), 30 * MIN);
        assert_eq!(bucket_width(30 * 1440 * MIN, 96), 720 * MIN);
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(120), 200);
        assert_eq!(short_count(2500), "2.5k");
        assert_eq!(short_count(3_000_000), "3M");
        assert_eq!(tick_indices(10, 6), vec![0, 2, 4, 6, 8]);
    }

    /// The gridlines' labels are whole numbers, and a bar's top sits on
    /// the gridline of its count.
    #[test]
    fn gridlines_fall_on_whole_counts() {
        let chart = Chart::stack("c", "t", vec![0, MIN], MIN, [(0, "a".to_string(), 4)]);
        let mut svg = String::new();
        chart.render(&mut svg);
        let labels: Vec<&str> = svg
            .split("text-anchor=\"end\">")
            .skip(1)
            .map(|s| s.split('<').next().unwrap())
            .collect();
        assert_eq!(labels, ["0", "1", "2", "3", "4"]);
        // y of the gridline labelled 4 is the top of the bar.
        assert!(svg.contains("y1=\"10.0\""), "{svg}");
        assert!(
            svg.contains("<rect x=\"") && svg.contains("y=\"10.00\""),
            "{svg}"
        );
    }

    #[test]
    fn stacks_keep_the_largest_series_and_sum_the_rest() {
        let counts = (0..12).map(|s| (0, format!("s{s:02}"), 100 - s as u64));
        let chart = Chart::stack("c", "t", vec![0, MIN], MIN, counts);
        assert_eq!(chart.series.len(), MAX_SERIES);
        assert_eq!(chart.series[0], ("s00".to_string(), vec![100, 0]));
        let other = &chart.series[MAX_SERIES - 1];
        assert_eq!(other.0, "other");
        // s08..s11: 92 + 91 + 90 + 89.
        assert_eq!(other.1, vec![362, 0]);
        assert_eq!(chart.total(), (89..=100).sum::<u64>());
    }

    #[test]
    fn segments_carry_their_counts_and_names_are_escaped() {
        let chart = Chart::stack(
            "c",
            "t",
            vec![0, MIN],
            MIN,
            [(0, "<b>".to_string(), 3), (1, "get".to_string(), 5)],
        );
        let mut html = String::new();
        chart.render(&mut html);
        assert_eq!(html.matches("<rect").count(), 2);
        assert!(html.contains("&lt;b&gt;: 3</title>"), "{html}");
        assert!(!html.contains("<b>"));
        assert!(html.contains("get (5)"));
    }
}
