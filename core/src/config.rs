//! The seed list (`config.txt`) and the timing and limit settings of a node.

use crate::msg::Endpoint;

/// Votes needed among `n` seeds: `floor(n/2) + 1`.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// Timing and limits of a node. Every duration is in milliseconds. [`Settings::default`]
/// gives the spec's values; [`Settings::validate`] rejects combinations that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// A peer generates a gossip message this often (spec: 5 s).
    pub gossip_interval_ms: u64,
    /// Gossip messages each peer generates in all (spec: 10).
    pub max_gossip: u32,
    /// A peer probes each neighbour this often.
    pub probe_interval_ms: u64,
    /// A probe with no answer by then is a miss.
    pub probe_timeout_ms: u64,
    /// Consecutive missed probes before a neighbour is suspected.
    pub probe_misses: u32,
    /// Witnesses asked to probe a suspect.
    pub witnesses: u32,
    /// How long a detector waits for its witnesses' `SUSPECT_ACK`s.
    pub suspect_timeout_ms: u64,
    /// Deadline of an ordinary request (`HELLO`, `PEER_LIST_REQ`, a gossip, a commit sync, ...).
    pub request_timeout_ms: u64,
    /// Deadline of a seed vote round; past it the round aborts. Kept well under the 2 s the
    /// reference waits for a `REGISTER_COMMIT`.
    pub vote_timeout_ms: u64,
    /// How long a peer waits for a `REGISTER_COMMIT` (the seed's vote round included).
    pub register_timeout_ms: u64,
    /// Pause before a peer tries registration again after it failed the first time; it
    /// doubles with every failure in a row, up to `register_retry_max_ms`, with jitter.
    pub register_retry_ms: u64,
    /// The longest pause between registration attempts: refusals (by seeds that cannot
    /// vouch, or provoked by forged input) never turn into a retry storm.
    pub register_retry_max_ms: u64,
    /// Seeds pull each other's Peer List this often (anti-entropy).
    pub anti_entropy_interval_ms: u64,
    /// A peer refreshes its Peer List from a seed this often (repair, rejoin).
    pub peer_list_refresh_ms: u64,
    /// Links a joining peer opens; below this degree it repairs.
    pub min_degree: u32,
    /// Links a peer accepts at most (`HELLO_ACK accepted: false` beyond).
    pub max_degree: u32,
    /// Candidates a joining peer asks for their degree before choosing neighbours.
    pub candidate_sample: u32,
    /// Peers listed in one `PEER_LIST_RESP` at most (a random sample beyond).
    pub peer_list_limit: u32,
    /// Entries in one anti-entropy reply at most.
    pub sync_entry_limit: u32,
    /// Seed: removed entries for peers it never held admitted that a seed keeps at most
    /// before it stops taking part in removals on hearsay. Such removals let a dead peer that
    /// only a minority of seeds still lists be removed everywhere; a lying seed can abuse them
    /// to make honest seeds record endpoints nobody registered, so their number is bounded.
    pub max_hearsay_removals: u32,
    /// Gossip hashes a peer remembers (two generations of half this each).
    pub seen_capacity: u32,
    /// Neighbours reconcile the gossip they hold, so copies lost to drops, partitions or
    /// crashes are sent again (`GOSSIP_DIGEST`, `IHAVE`, `GOSSIP_PULL`).
    pub gossip_repair: bool,
    /// A peer sends a digest of the gossip it holds to one neighbour this often (in turn).
    pub repair_interval_ms: u64,
    /// A gossip a neighbour announced (`IHAVE`) that has not arrived whole this long after
    /// the announcement is pulled from the announcer (sooner if it is past the margin of
    /// gossip still in flight).
    pub graft_timeout_ms: u64,
    /// How a peer passes gossip on: whole to every neighbour (the spec's flood), or whole
    /// along a spanning tree and announced on the other links (lazy push).
    pub gossip_mode: GossipMode,
    /// Lazy push: the ids a peer owes its lazy links are announced (`IHAVE`, one line per
    /// neighbour for all of them) this long after the first one is owed.
    pub ihave_interval_ms: u64,
    /// Seed: a removed or left entry is forgotten this long after the seed took it (and its
    /// incarnation remembered as long again, see `seed/peer_list.rs`), so the Peer List holds
    /// the peers of now, not every peer that ever was.
    pub tombstone_ms: u64,
    /// Longest application message payload (`APP_MSG` `data`), in bytes.
    pub max_app_bytes: u32,
    /// Application messages a peer publishes per second at most (a token bucket with a
    /// burst of as many): a publish over it is refused, never queued without bound.
    pub publish_rate: u32,
    /// Application messages a peer accepts from one origin per second at most (a token
    /// bucket with a burst of as many), first-time copies only: above it a copy is refused
    /// unseen, so a flood under one origin's name costs its receivers a bounded amount. At
    /// twice `publish_rate`, an honest publisher never meets it.
    pub app_rate_per_origin: u32,
}

/// The largest `max_app_bytes` allowed: escaped as JSON (up to six bytes a character), one
/// payload still fits the default 1 MiB line.
pub const MAX_APP_BYTES_LIMIT: u32 = 128 << 10;

/// How a peer passes a first-time gossip on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GossipMode {
    /// Whole to every neighbour but the one it came from: about `2|E| - (N - 1)` copies per
    /// broadcast. The spec's, and what the reference implementation does.
    #[default]
    Flood,
    /// Plumtree (Leitão, Pereira, Rodrigues 2007): whole along the eager links, which the
    /// peers prune to a spanning tree (a duplicate answers `prune`), and announced in
    /// batched `IHAVE`s on the lazy ones, which a peer that misses a gossip grafts back
    /// (`GOSSIP_PULL graft`). About `N - 1` copies per broadcast. Needs the gossip repair.
    Lazy,
}

impl std::fmt::Display for GossipMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GossipMode::Flood => "flood",
            GossipMode::Lazy => "lazy",
        })
    }
}

impl std::str::FromStr for GossipMode {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flood" => Ok(GossipMode::Flood),
            "lazy" => Ok(GossipMode::Lazy),
            other => Err(SettingsError(format!(
                "unknown gossip mode {other:?}: expected flood or lazy"
            ))),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gossip_interval_ms: 5_000,
            max_gossip: 10,
            probe_interval_ms: 1_000,
            probe_timeout_ms: 500,
            probe_misses: 3,
            witnesses: 3,
            suspect_timeout_ms: 1_000,
            request_timeout_ms: 1_000,
            vote_timeout_ms: 1_200,
            register_timeout_ms: 1_800,
            register_retry_ms: 1_000,
            register_retry_max_ms: 8_000,
            anti_entropy_interval_ms: 2_000,
            peer_list_refresh_ms: 10_000,
            min_degree: 2,
            max_degree: 256,
            candidate_sample: 16,
            peer_list_limit: 64,
            sync_entry_limit: 1_000,
            max_hearsay_removals: 1_024,
            seen_capacity: 1 << 17,
            gossip_repair: true,
            repair_interval_ms: 1_000,
            graft_timeout_ms: 500,
            gossip_mode: GossipMode::Flood,
            ihave_interval_ms: 100,
            tombstone_ms: 30 * 60 * 1_000,
            max_app_bytes: 16 << 10,
            publish_rate: 2_000,
            app_rate_per_origin: 4_000,
        }
    }
}

/// A setting that cannot work, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Rejects settings that cannot work together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let err = |s: &str| Err(SettingsError(s.to_string()));
        let positive = [
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            ("probe_timeout_ms", self.probe_timeout_ms),
            ("suspect_timeout_ms", self.suspect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("vote_timeout_ms", self.vote_timeout_ms),
            ("register_timeout_ms", self.register_timeout_ms),
            ("register_retry_ms", self.register_retry_ms),
            ("anti_entropy_interval_ms", self.anti_entropy_interval_ms),
            ("peer_list_refresh_ms", self.peer_list_refresh_ms),
            ("repair_interval_ms", self.repair_interval_ms),
            ("graft_timeout_ms", self.graft_timeout_ms),
            ("ihave_interval_ms", self.ihave_interval_ms),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(SettingsError(format!("{name} must be positive")));
            }
        }
        if self.probe_misses == 0 {
            return err("probe_misses must be at least 1");
        }
        if self.witnesses == 0 {
            return err("witnesses must be at least 1: one peer alone never gets another removed");
        }
        if self.probe_timeout_ms >= self.suspect_timeout_ms {
            return err("probe_timeout_ms must be below suspect_timeout_ms: a witness probes before it answers");
        }
        if self.probe_timeout_ms >= self.vote_timeout_ms {
            return err(
                "probe_timeout_ms must be below vote_timeout_ms: voters probe before they vote",
            );
        }
        if self.probe_timeout_ms + self.vote_timeout_ms >= self.register_timeout_ms {
            return err("probe_timeout_ms + vote_timeout_ms must be below register_timeout_ms: the seed probes the registrant, then runs its round, then answers");
        }
        if self.register_retry_max_ms < self.register_retry_ms {
            return err("register_retry_max_ms must be at least register_retry_ms");
        }
        if self.min_degree == 0 || self.min_degree > self.max_degree {
            return err("need 1 <= min_degree <= max_degree");
        }
        if self.peer_list_limit == 0 || self.sync_entry_limit == 0 {
            return err("peer_list_limit and sync_entry_limit must be positive");
        }
        if self.seen_capacity < 2 {
            return err("seen_capacity must be at least 2");
        }
        if self.tombstone_ms < 10 * self.anti_entropy_interval_ms {
            return err("tombstone_ms must be at least 10 anti-entropy intervals: every seed must learn a removal well before any forgets it");
        }
        if self.max_app_bytes == 0 || self.max_app_bytes > MAX_APP_BYTES_LIMIT {
            return err("max_app_bytes must be in 1..=131072");
        }
        if self.publish_rate == 0 || self.app_rate_per_origin == 0 {
            return err("publish_rate and app_rate_per_origin must be positive");
        }
        if self.gossip_mode == GossipMode::Lazy && !self.gossip_repair {
            return err("gossip_mode lazy needs gossip_repair: lazy links carry only announcements, and a peer pulls what they announce");
        }
        Ok(())
    }
}

/// A `config.txt` that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Line `line` (1-based) is not `<host>,<port>`.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The line as written.
        content: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same seed is listed twice.
    Duplicate {
        /// 1-based line number of the second listing.
        line: usize,
        /// The seed, as `<host>,<port>`.
        seed: String,
    },
    /// No seed is listed.
    Empty,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Malformed {
                line,
                content,
                reason,
            } => {
                write!(
                    f,
                    "line {line}: {reason}: {content:?} (expected <host>,<port>)"
                )
            }
            ConfigError::Duplicate { line, seed } => {
                write!(f, "line {line}: seed {seed} is listed twice")
            }
            ConfigError::Empty => f.write_str("no seeds listed"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Writes a seed list in the format [`parse_seeds`] reads: one `<ip>,<port>` per line, IPv6
/// in brackets (`[::1],5000`).
pub fn seeds_text(seeds: &[Endpoint]) -> String {
    seeds
        .iter()
        .map(|s| format!("{},{}\n", crate::msg::IpText(s.ip()), s.port()))
        .collect()
}

/// How a seed list names a seed's host: an address, or a DNS name the driver resolves (the
/// core never resolves).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeedHost {
    /// An IPv4 or IPv6 address.
    Ip(std::net::IpAddr),
    /// A host name (letters, digits, `-` and `.`), lower-cased.
    Name(String),
}

impl std::fmt::Display for SeedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeedHost::Ip(ip) => write!(f, "{}", crate::msg::IpText(*ip)),
            SeedHost::Name(name) => f.write_str(name),
        }
    }
}

/// One seed of a seed list, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedLine {
    /// 1-based line number.
    pub line: usize,
    /// The host as written.
    pub host: SeedHost,
    /// The port.
    pub port: u16,
}

impl SeedLine {
    /// The endpoint, if the host is an address.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self.host {
            SeedHost::Ip(ip) => Some(Endpoint::new(ip, self.port)),
            SeedHost::Name(_) => None,
        }
    }
}

/// Parses a host as `config.txt` or a `host:port` flag writes it: an IPv4 address, an IPv6
/// address bare or in brackets, or a host name (RFC 1123: labels of letters, digits and `-`,
/// not starting or ending with `-`, at most 253 characters in all).
pub fn parse_host(text: &str) -> Result<SeedHost, &'static str> {
    let bracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    if let Some(inner) = bracketed {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| SeedHost::Ip(ip.into()))
            .map_err(|_| "not an IPv6 address inside [ ]");
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SeedHost::Ip(ip));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = text.strip_suffix('.').unwrap_or(text);
    let all_digits = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if name.is_empty() || name.len() > 253 || all_digits || !name.split('.').all(label_ok) {
        return Err("not an IP address or host name");
    }
    Ok(SeedHost::Name(name.to_ascii_lowercase()))
}

/// Parses a seed list: one `<host>,<port>` per line, the host an IPv4 address, an IPv6
/// address (bare or in brackets) or a host name; blank lines and `#` comments (whole-line or
/// trailing) allowed, spaces around each part ignored. Returns the seeds in file order.
///
/// Every mistake is reported with its 1-based line number: an operator fixes the file by it.
pub fn parse_seed_lines(text: &str) -> Result<Vec<SeedLine>, ConfigError> {
    let mut seeds = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let malformed = |reason: &str| ConfigError::Malformed {
            line,
            content: raw.to_string(),
            reason: reason.to_string(),
        };
        let (host, port) = content
            .rsplit_once(',')
            .ok_or_else(|| malformed("missing ','"))?;
        let host = parse_host(host.trim()).map_err(malformed)?;
        let port: u16 = port
            .trim()
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| malformed("port must be an integer in 1..=65535"))?;
        if !seen.insert((host.clone(), port)) {
            return Err(ConfigError::Duplicate {
                line,
                seed: format!("{host},{port}"),
            });
        }
        seeds.push(SeedLine { line, host, port });
    }
    if seeds.is_empty() {
        return Err(ConfigError::Empty);
    }
    Ok(seeds)
}

/// Parses a seed list of addresses only (see [`parse_seed_lines`]; a host name is an error
/// here: the driver resolves names, then the core takes endpoints).
pub fn parse_seeds(text: &str) -> Result<Vec<Endpoint>, ConfigError> {
    parse_seed_lines(text)?
        .into_iter()
        .map(|s| {
            s.endpoint().ok_or_else(|| ConfigError::Malformed {
                line: s.line,
                content: text.lines().nth(s.line - 1).unwrap_or_default().to_string(),
                reason: "a host name, where only addresses are taken".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_modes_parse_print_and_lazy_needs_repair() {
        for mode in [GossipMode::Flood, GossipMode::Lazy] {
            assert_eq!(mode.to_string().parse::<GossipMode>(), Ok(mode));
        }
        let bad = "eager".parse::<GossipMode>().expect_err("not a mode");
        assert!(bad.0.contains("flood or lazy"), "{bad}");
        let lazy = Settings {
            gossip_mode: GossipMode::Lazy,
            ..Settings::default()
        };
        assert_eq!(lazy.validate(), Ok(()));
        let no_repair = Settings {
            gossip_repair: false,
            ..lazy
        };
        let why = no_repair.validate().expect_err("lazy without repair");
        assert!(why.0.contains("needs gossip_repair"), "{why}");
    }

    #[test]
    fn a_written_seed_list_reads_back() {
        let seeds: Vec<Endpoint> = ["127.0.0.1:5001", "10.0.0.7:6000", "[::1]:5002"]
            .iter()
            .map(|t| t.parse().expect("endpoint"))
            .collect();
        assert_eq!(parse_seeds(&seeds_text(&seeds)), Ok(seeds));
    }

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn parses_seeds_with_comments_blanks_and_spaces() {
        let text = "# seeds\n\n127.0.0.1,5000\n  127.0.0.1 , 5001  # second\r\n::1,5002\n\t\n";
        assert_eq!(
            parse_seeds(text),
            Ok(vec![
                ep("127.0.0.1:5000"),
                ep("127.0.0.1:5001"),
                ep("[::1]:5002")
            ])
        );
    }

    fn malformed_line(text: &str) -> (usize, String) {
        match parse_seeds(text) {
            Err(ConfigError::Malformed { line, content, .. }) => (line, content),
            other => panic!("expected Malformed for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let cases = [
            ("127.0.0.1 5000", 1),
            ("127.0.0.1,5000\nlocal_host,5001", 2),
            ("127.0.0.1,5000\n\n# c\n127.0.0.1,0", 4),
            ("127.0.0.1,70000", 1),
            ("127.0.0.1,-1", 1),
            ("127.0.0.1,50.5", 1),
            ("127.0.0.1,", 1),
            (",5000", 1),
            ("127.0.0.1,5000,6000", 1),
            ("[::1,5000", 1),
            ("[127.0.0.1],5000", 1),
            ("-bad.example,5000", 1),
            ("1.2.3,5000", 1),
        ];
        for (text, want) in cases {
            let (line, content) = malformed_line(text);
            assert_eq!(line, want, "{text:?}");
            assert_eq!(Some(content.as_str()), text.lines().nth(want - 1));
        }
    }

    #[test]
    fn duplicate_is_reported_at_its_second_listing() {
        let text = "127.0.0.1,5000\n127.0.0.1,5001\n127.0.0.1 ,5000";
        assert_eq!(
            parse_seeds(text),
            Err(ConfigError::Duplicate {
                line: 3,
                seed: "127.0.0.1,5000".into()
            })
        );
    }

    #[test]
    fn ipv6_in_brackets_and_host_names_parse() {
        let text =
            "[::1],5000\n::1,5001\nSeed-0.Seeds.default.svc.cluster.local.,5002\nlocalhost,5003";
        let lines = parse_seed_lines(text).expect("parses");
        let hosts: Vec<String> = lines
            .iter()
            .map(|l| format!("{},{}", l.host, l.port))
            .collect();
        assert_eq!(
            hosts,
            [
                "[::1],5000",
                "[::1],5001",
                "seed-0.seeds.default.svc.cluster.local,5002",
                "localhost,5003"
            ]
        );
        assert_eq!(lines[1].endpoint(), Some(ep("[::1]:5001")));
        assert_eq!(lines[3].endpoint(), None);
        // parse_seeds takes addresses only, and says so of a name
        match parse_seeds(text) {
            Err(ConfigError::Malformed {
                line: 3, reason, ..
            }) => {
                assert!(reason.contains("host name"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // the same name twice is a duplicate, whatever its case
        assert!(matches!(
            parse_seed_lines("a.example,1\nA.EXAMPLE,1"),
            Err(ConfigError::Duplicate { line: 2, .. })
        ));
    }

    #[test]
    fn no_seed_is_an_error() {
        assert_eq!(parse_seeds(""), Err(ConfigError::Empty));
        assert_eq!(parse_seeds("# only\n\n  \n"), Err(ConfigError::Empty));
    }

    #[test]
    fn error_messages_name_the_line() {
        let e = parse_seeds("1.2.3.4,5\nbad").unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
    }
}
