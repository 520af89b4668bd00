//! The window the context page's headline figures cover — the match rate, requests, errors,
//! p99, fallbacks, signatures and skip reasons — chosen with `?window=` and named on every
//! figure. By default the figures start at the context's last change, so that a fix (a new
//! translator, a noise rule, a promotion) shows at once instead of an hour later.

/// How far back the headline figures look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Window {
    SinceChange,
    Minutes5,
    Hour,
    Day,
    Week,
}

/// The longest window: what shadow results are kept by default.
const WEEK_MINUTES: i64 = 7 * 1440;

impl Window {
    pub(super) const ALL: [Window; 5] = [
        Window::SinceChange,
        Window::Minutes5,
        Window::Hour,
        Window::Day,
        Window::Week,
    ];

    /// `?window=` as given; anything else is the default.
    pub(super) fn parse(s: Option<&str>) -> Window {
        Window::ALL
            .into_iter()
            .find(|w| Some(w.key()) == s)
            .unwrap_or(Window::SinceChange)
    }

    /// Its value in `?window=`.
    pub(super) fn key(self) -> &'static str {
        match self {
            Window::SinceChange => "change",
            Window::Minutes5 => "5m",
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// Its name in the selector.
    pub(super) fn choice(self) -> &'static str {
        match self {
            Window::SinceChange => "since the last change",
            Window::Minutes5 => "5 minutes",
            Window::Hour => "1 hour",
            Window::Day => "24 hours",
            Window::Week => "7 days",
        }
    }

    /// The first minute it covers at `now` (a minute number), and the label every figure
    /// carries. `last_change_ms`: when the context last changed (none recorded: the last
    /// hour).
    pub(super) fn span(self, now: i64, last_change_ms: Option<i64>) -> (i64, String) {
        match self {
            Window::Minutes5 => (now - 4, "last 5 minutes".into()),
            Window::Hour => (now - 59, "last hour".into()),
            Window::Day => (now - 1439, "last 24 hours".into()),
            Window::Week => (now - WEEK_MINUTES + 1, "last 7 days".into()),
            Window::SinceChange => match last_change_ms {
                None => (now - 59, "last hour (no change recorded)".into()),
                Some(ms) => {
                    let changed = ms.div_euclid(60_000);
                    let at = strangler_catalog::clock::rfc3339(ms, false);
                    let at = at.get(..16).unwrap_or(&at).replace('T', " ");
                    if changed < now - WEEK_MINUTES + 1 {
                        (
                            now - WEEK_MINUTES + 1,
                            format!("last 7 days (last change {at} UTC)"),
                        )
                    } else {
                        (changed, format!("since the last change, {at} UTC"))
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_label_and_start_where_they_say() {
        assert_eq!(Window::parse(None), Window::SinceChange);
        assert_eq!(Window::parse(Some("nonsense")), Window::SinceChange);
        for w in Window::ALL {
            assert_eq!(Window::parse(Some(w.key())), w);
        }
        let now = 29_000_000; // a minute number in 2025
        assert_eq!(
            Window::Minutes5.span(now, None),
            (now - 4, "last 5 minutes".into())
        );
        assert_eq!(Window::Day.span(now, None).0, now - 1439);
        // A change 90 minutes ago: from its minute on, named with its time.
        let ms = (now - 90) * 60_000 + 30_000;
        let (from, label) = Window::SinceChange.span(now, Some(ms));
        assert_eq!(from, now - 90);
        assert!(label.starts_with("since the last change, "), "{label}");
        assert!(label.ends_with(" UTC"), "{label}");
        assert!(!label.trim_end_matches(" UTC").contains('T'), "{label}");
        // A change older than what is kept: the last 7 days, saying so.
        let (from, label) = Window::SinceChange.span(now, Some((now - 20_000) * 60_000));
        assert_eq!(from, now - WEEK_MINUTES + 1);
        assert!(label.starts_with("last 7 days (last change "), "{label}");
        assert_eq!(
            Window::SinceChange.span(now, None),
            (now - 59, "last hour (no change recorded)".into())
        );
    }
}
