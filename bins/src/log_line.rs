//! Reading back the lines the nodes log: `<text> [<role> <ip:port> t=<secs>.<ms>]`, as
//! `gossip_driver_mio`'s renderer writes them (the tests and `bench_scale` read them).

use std::net::SocketAddr;

/// A log line split into its text, the node that logged it and when (unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The text before the tag.
    pub text: String,
    /// The node that logged it.
    pub node: SocketAddr,
    /// When, in unix milliseconds.
    pub unix_ms: u64,
}

/// Parses `<text> [<role> <ip:port> t=<secs>.<ms>]`; `None` for any other line.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let (text, tag) = line.rsplit_once(" [")?;
    let tag = tag.strip_suffix(']')?;
    let mut parts = tag.split(' ');
    let _role = parts.next()?;
    let node = parts.next()?.parse().ok()?;
    let t = parts.next()?.strip_prefix("t=")?;
    let (secs, ms) = t.split_once('.')?;
    let unix_ms = secs.parse::<u64>().ok()? * 1000 + ms.parse::<u64>().ok()?;
    Some(LogLine {
        text: text.to_string(),
        node,
        unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_line_splits_and_others_do_not() {
        let l = parse_line(
            "Neighbor added: 10.0.0.2:7000 (its degree 1) [peer 10.0.0.3:7000 t=1767225600.123]",
        )
        .expect("parsed");
        assert_eq!(l.text, "Neighbor added: 10.0.0.2:7000 (its degree 1)");
        assert_eq!(l.node, "10.0.0.3:7000".parse::<SocketAddr>().unwrap());
        assert_eq!(l.unix_ms, 1_767_225_600_123);
        assert_eq!(parse_line("no tag here"), None);
        assert_eq!(parse_line("x [peer nowhere t=1.2]"), None);
    }
}
