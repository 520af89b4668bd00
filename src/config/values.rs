//! Value types of the configuration file that check themselves while they are read, so that a
//! bad value is reported with the file's line and a fix.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use strangler_services::Origin;

/// `IP:PORT`.
#[derive(Debug, Clone, Copy)]
pub struct Addr(pub SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Addr).map_err(|_| {
            de::Error::custom(format!(
                "`{s}` is not a socket address; write it as IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::1]:9090\""
            ))
        })
    }
}

/// A duration such as `"250ms"`, `"30s"` or `"2m"`: more than zero, at most a day.
#[derive(Debug, Clone, Copy)]
pub struct Dur(pub Duration);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|_| {
        format!("`{s}` is not a duration; write it like \"500ms\", \"30s\" or \"2m\"")
    })?;
    if d.is_zero() {
        return Err(format!("`{s}` is zero; a timeout must be longer than that"));
    }
    if d > Duration::from_secs(86_400) {
        return Err(format!(
            "`{s}` is longer than a day; choose a shorter value"
        ));
    }
    Ok(d)
}

/// A delay that may be zero (`"0s"`: none), at most an hour.
#[derive(Debug, Clone, Copy)]
pub struct Delay(pub Duration);

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let d = humantime::parse_duration(&s).map_err(|_| {
            de::Error::custom(format!(
                "`{s}` is not a duration; write it like \"0s\", \"5s\" or \"1m\""
            ))
        })?;
        if d > Duration::from_secs(3600) {
            return Err(de::Error::custom(format!(
                "`{s}` is longer than an hour; choose a shorter value"
            )));
        }
        Ok(Delay(d))
    }
}

/// A retention period: from a minute to ten years (`"7d"`, `"12h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Duration);

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let d = humantime::parse_duration(&s).map_err(|_| {
            de::Error::custom(format!(
                "`{s}` is not a duration; write it like \"7d\", \"12h\" or \"90d\""
            ))
        })?;
        if d < Duration::from_secs(60) || d > Duration::from_secs(3650 * 86_400) {
            return Err(de::Error::custom(format!(
                "`{s}` is out of range; keep results from a minute to ten years"
            )));
        }
        Ok(Retention(d))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// A duration, or `"off"` for none.
#[derive(Debug, Clone, Copy)]
pub struct OptDur(pub Option<Duration>);

impl<'de> Deserialize<'de> for OptDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("off") {
            return Ok(OptDur(None));
        }
        parse_duration(&s)
            .map(|d| OptDur(Some(d)))
            .map_err(|e| de::Error::custom(format!("{e} (or \"off\" for no limit)")))
    }
}

/// An upstream origin, `http://host:port`.
#[derive(Debug, Clone)]
pub struct Url(pub Origin);

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Origin::parse(&s).map(Url).map_err(de::Error::custom)
    }
}

/// A whole number within `MIN..=MAX`.
#[derive(Debug, Clone, Copy)]
pub struct Ranged<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Ranged<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u64::try_from(n) {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(Ranged(n)),
            _ => Err(de::Error::custom(format!(
                "{n} is out of range; choose a number from {MIN} to {MAX}"
            ))),
        }
    }
}

/// A network in CIDR notation, or a single address.
#[derive(Debug, Clone, Copy)]
pub struct Net(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Net(net));
        }
        s.parse::<IpAddr>()
            .map(|ip| Net(ip.into()))
            .map_err(|_| {
                de::Error::custom(format!(
                    "`{s}` is not a network; write a CIDR such as \"10.0.0.0/8\" or an address such as \"192.0.2.7\""
                ))
            })
    }
}

/// A `Via` pseudonym: an HTTP token.
#[derive(Debug, Clone)]
pub struct Token(pub String);

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if ok {
            Ok(Token(s))
        } else {
            Err(de::Error::custom(format!(
                "`{s}` is not a valid token; use letters, digits, `-` and `.`"
            )))
        }
    }
}

/// A log filter: a level (`info`) or `tracing` directives (`info,strangler=debug`).
#[derive(Debug, Clone)]
pub struct Filter(pub String);

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        tracing_subscriber::EnvFilter::try_new(&s)
            .map(|_| Filter(s.clone()))
            .map_err(|e| {
                de::Error::custom(format!(
                    "`{s}` is not a log filter ({e}); use trace, debug, info, warn or error"
                ))
            })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        })
    }
}

/// How the legacy app is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    H1,
    H2c,
    H2,
    Auto,
}

/// Which `Host` the legacy app sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    Preserve,
    Upstream,
}
