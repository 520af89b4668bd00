//! An example pair's bodies side by side, with the lines only one side has marked.

use crate::pages::charts::escape;

/// A body as lines: JSON pretty-printed (so that one-line answers diff by field), anything
/// else as it is.
fn body_lines(body: &str) -> Vec<String> {
    let pretty = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    pretty
        .as_deref()
        .unwrap_or(body)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Both bodies as escaped HTML with the lines only one side has wrapped in `<mark>` (a
/// longest-common-subsequence diff of lines; past 400 lines a side, line by line).
pub(in crate::pages) fn diff_html(legacy: &str, new: &str) -> (String, String) {
    let (a, b) = (body_lines(legacy), body_lines(new));
    let (mut keep_a, mut keep_b) = (vec![false; a.len()], vec![false; b.len()]);
    if a.len() <= 400 && b.len() <= 400 {
        let mut lcs = vec![vec![0u16; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i] == b[j] {
                keep_a[i] = true;
                keep_b[j] = true;
                i += 1;
                j += 1;
            } else if lcs[i + 1][j] >= lcs[i][j + 1] {
                i += 1;
            } else {
                j += 1;
            }
        }
    } else {
        for (i, line) in a.iter().enumerate() {
            let same = b.get(i) == Some(line);
            keep_a[i] = same;
            if let Some(k) = keep_b.get_mut(i) {
                *k = same;
            }
        }
    }
    // Long bodies show the differing lines with three lines around them; the runs of same
    // lines in between are folded to one line saying how many.
    let render = |lines: &[String], keep: &[bool]| {
        const AROUND: usize = 3;
        let near = |i: usize| {
            lines.len() <= 12
                || (i.saturating_sub(AROUND)..=(i + AROUND).min(lines.len() - 1)).any(|j| !keep[j])
        };
        let mut out = String::new();
        let mut folded = 0;
        for (i, (line, same)) in lines.iter().zip(keep).enumerate() {
            if !near(i) {
                folded += 1;
                continue;
            }
            if folded > 0 {
                out.push_str(&format!(
                    "<span class=\"muted\">⋯ {folded} same lines</span>\n"
                ));
                folded = 0;
            }
            if *same {
                out.push_str(&escape(line));
            } else {
                out.push_str("<mark>");
                out.push_str(&escape(line));
                out.push_str("</mark>");
            }
            out.push('\n');
        }
        if folded > 0 {
            out.push_str(&format!(
                "<span class=\"muted\">⋯ {folded} same lines</span>\n"
            ));
        }
        out
    };
    (render(&a, &keep_a), render(&b, &keep_b))
}
