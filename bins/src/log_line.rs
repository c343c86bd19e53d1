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

/// Parses `<text> [<role> <ip:port> t=<secs>.<ms>]` (an IPv6 node's endpoint in brackets,
/// `[peer [fd00::5]:7000 t=...]`); `None` for any other line.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let (head, t) = line.strip_suffix(']')?.rsplit_once(" t=")?;
    let (head, node) = head.rsplit_once(' ')?;
    let (text, role) = head.rsplit_once(" [")?;
    if role.is_empty() || !role.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let node = node.parse().ok()?;
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
        assert_eq!(parse_line("x [peer fd00::6:7000 t=1.2]"), None);
    }

    #[test]
    fn an_ipv6_nodes_line_splits_at_its_tag() {
        let l = parse_line(
            "Dead Node:[fd00:a:1::5]:7000:1767225600:[fd00:a:1::6] (DEAD_REPORT sent to [fd00:a:1::2]:7000) [peer [fd00:a:1::6]:7000 t=1767225600.042]",
        )
        .expect("parsed");
        assert_eq!(
            l.text,
            "Dead Node:[fd00:a:1::5]:7000:1767225600:[fd00:a:1::6] (DEAD_REPORT sent to [fd00:a:1::2]:7000)"
        );
        assert_eq!(l.node, "[fd00:a:1::6]:7000".parse::<SocketAddr>().unwrap());
        assert_eq!(l.unix_ms, 1_767_225_600_042);
    }
}
