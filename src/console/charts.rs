//! The console's charts as numbers the templates draw with SVG rectangles (no
//! script, no inline style: the page's Content-Security-Policy allows neither).

use serde::Serialize;

/// One segment of a stacked bar: `x` and `width` in percent of the bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub label: String,
    pub count: i64,
    pub x: f64,
    pub width: f64,
    /// A CSS class naming the colour.
    pub class: String,
}

/// The stacked bar of `parts` (in order); empty when they sum to nothing.
pub fn stacked(parts: &[(&str, i64)]) -> Vec<Segment> {
    let total: i64 = parts.iter().map(|(_, n)| (*n).max(0)).sum();
    if total == 0 {
        return vec![];
    }
    let mut x = 0.0;
    let mut out = vec![];
    for (label, count) in parts.iter().filter(|(_, n)| *n > 0) {
        let width = round(*count as f64 * 100.0 / total as f64);
        out.push(Segment { label: label.to_string(), count: *count, x: round(x), width, class: class(label) });
        x += width;
    }
    out
}

/// Horizontal bars, each as a percentage of the largest.
pub fn bars(parts: &[(String, i64)]) -> Vec<Segment> {
    let max = parts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    parts
        .iter()
        .map(|(label, count)| Segment {
            label: label.clone(),
            count: *count,
            x: 0.0,
            width: round((*count).max(0) as f64 * 100.0 / max as f64),
            class: class(label),
        })
        .collect()
}

/// A percentage with one decimal.
pub fn percent(part: f64) -> f64 {
    round((part * 100.0).clamp(0.0, 100.0))
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A class name from a state or outcome word (only `[a-z_]`, so it is safe in an
/// attribute even before escaping).
fn class(label: &str) -> String {
    let word: String = label.chars().filter(|c| c.is_ascii_lowercase() || *c == '_').collect();
    format!("k-{word}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_bar_in_order() {
        let s = stacked(&[("completed", 2), ("pending", 0), ("not_reached", 1), ("in_progress", 1)]);
        assert_eq!(s.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["completed", "not_reached", "in_progress"]);
        assert_eq!((s[0].x, s[0].width, s[1].x, s[2].x), (0.0, 50.0, 50.0, 75.0));
        assert_eq!(s[1].class, "k-not_reached");
        assert!(stacked(&[("pending", 0)]).is_empty());
        let b = bars(&[("busy".into(), 5), ("none".into(), 10), ("<x>".into(), 0)]);
        assert_eq!((b[0].width, b[1].width, b[2].width, b[2].class.as_str()), (50.0, 100.0, 0.0, "k-x"));
        assert_eq!((percent(0.4567), percent(2.0)), (45.7, 100.0));
    }
}
