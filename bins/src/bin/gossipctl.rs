//! `gossipctl`: the command-line client of a node's control socket (`docs/CONTROL.md`), one
//! program with subcommands, the Serf way: publish, watch, members, info.

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use gossip_bins::control_client::{self as cc, Control, EventView, Reply};
use gossip_core::msg::{RoleStatus, StatusResp};
use gossip_core::wire::auth::Keyring;

/// Talks to a running seed or peer through its control socket (`--control PATH` of the node).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags every subcommand takes.
#[derive(Args, Debug)]
struct Global {
    /// The node's control socket [default: $GOSSIP_CONTROL].
    #[arg(long, global = true, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Print the node's JSON replies and events as they are, one per line.
    #[arg(long, global = true)]
    json: bool,
    /// Give up on a reply after this long (`watch`: on its first reply only; events may be
    /// far apart).
    #[arg(long, global = true, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

/// The subcommands; each is one request on a connection of its own (`leave` will be one
/// more variant).
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Broadcast an application message from this peer to every peer; prints its id.
    Publish(PublishArgs),
    /// Stream this node's events until it closes the connection (times are UTC).
    Watch(WatchArgs),
    /// The Peer List: a seed's own, or at a peer the view of its seeds (`--json`: each
    /// seed's `STATUS_RESP` line).
    Members(MembersArgs),
    /// This node's role, standing, settings and counters.
    Info,
    /// Make the node leave the network and exit (a peer: the seeds certify LEFT, its
    /// neighbours drop the link; a seed: it finishes its rounds); prints how it went.
    Leave,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "stdin"])))]
struct PublishArgs {
    /// Application name of the message (receivers can watch one name).
    #[arg(long, value_name = "N")]
    name: Option<String>,
    /// The message.
    text: Option<String>,
    /// Read the message from stdin, all of it, as it is (it must be UTF-8).
    #[arg(long)]
    stdin: bool,
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// Event types to stream, comma-separated: gossip, member, link, suspect, vote, commit,
    /// synthetic, error [default: all].
    #[arg(long = "type", value_name = "TYPES", value_delimiter = ',')]
    types: Vec<String>,
    /// Keep only application messages of this name.
    #[arg(long, value_name = "N")]
    name: Option<String>,
}

#[derive(Args, Debug)]
struct MembersArgs {
    /// At a peer, print the sample of peers it knows instead of asking its seeds.
    #[arg(long)]
    local: bool,
    /// Cluster key file of the seeds asked (status requests are sealed with it).
    #[arg(long, value_name = "PATH")]
    cluster_key_file: Option<PathBuf>,
}

/// Why gossipctl stops early: the exit code and the line for stderr (none when stdout's
/// reader went away, which is how `gossipctl watch | head` ends).
struct Stop {
    code: u8,
    message: Option<String>,
}

impl Stop {
    fn error(message: impl Into<String>) -> Stop {
        Stop {
            code: 1,
            message: Some(message.into()),
        }
    }

    fn usage(message: impl Into<String>) -> Stop {
        Stop {
            code: 2,
            message: Some(message.into()),
        }
    }
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::error(message)
    }
}

/// Stdout, flushed after every line so pipes get events as they happen; a closed pipe ends
/// the program quietly with success.
struct Out(std::io::StdoutLock<'static>);

impl Out {
    fn line(&mut self, text: &str) -> Result<(), Stop> {
        self.write(&[text.as_bytes(), b"\n"])
    }

    fn text(&mut self, text: &str) -> Result<(), Stop> {
        self.write(&[text.as_bytes()])
    }

    fn write(&mut self, parts: &[&[u8]]) -> Result<(), Stop> {
        let written = parts
            .iter()
            .try_for_each(|part| self.0.write_all(part))
            .and_then(|()| self.0.flush());
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(Stop {
                code: 0,
                message: None,
            }),
            Err(e) => Err(Stop::error(format!("stdout: {e}"))),
        }
    }
}

/// A line on stderr; a closed stderr is no reason to stop.
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Out(std::io::stdout().lock());
    match run(&cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(stop) => {
            if let Some(message) = stop.message {
                note(&format!("gossipctl: {message}"));
            }
            ExitCode::from(stop.code)
        }
    }
}

fn run(cli: &Cli, out: &mut Out) -> Result<(), Stop> {
    let path = match &cli.global.control {
        Some(path) => path.clone(),
        None => std::env::var_os("GOSSIP_CONTROL")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Stop::usage("no control socket: give --control PATH or set GOSSIP_CONTROL")
            })?,
    };
    let timeout = Duration::from_millis(cli.global.timeout_ms);
    let json = cli.global.json;
    match &cli.cmd {
        Cmd::Publish(args) => publish(&path, timeout, json, args, out),
        Cmd::Watch(args) => watch(&path, timeout, json, args, out),
        Cmd::Members(args) => members(&path, timeout, json, args, out),
        Cmd::Info => info(&path, timeout, json, out),
        Cmd::Leave => leave(&path, timeout, json, out),
    }
}

/// Sends one request and returns the accepted reply; a refusal is `<cmd> refused: <error>`
/// (the reply line is printed first with `--json`, for programs).
fn ask(
    path: &std::path::Path,
    timeout: Duration,
    request: &serde_json::Value,
    cmd: &str,
    json: bool,
    out: &mut Out,
) -> Result<Reply, Stop> {
    let mut control = Control::connect(path, Some(timeout))?;
    let reply = control.request(request)?;
    if let Some(error) = reply.refusal() {
        if json {
            out.line(&reply.line)?;
        }
        return Err(Stop::error(format!("{cmd} refused: {error}")));
    }
    Ok(reply)
}

fn publish(
    path: &std::path::Path,
    timeout: Duration,
    json: bool,
    args: &PublishArgs,
    out: &mut Out,
) -> Result<(), Stop> {
    let data = match (&args.text, args.stdin) {
        (Some(text), false) => text.clone(),
        (None, true) => read_stdin()?,
        _ => return Err(Stop::usage("give exactly one of TEXT and --stdin")),
    };
    let request = cc::publish_request(&data, args.name.as_deref());
    let reply = ask(path, timeout, &request, "publish", json, out)?;
    if json {
        return out.line(&reply.line);
    }
    match reply.str("id") {
        Some(id) => out.line(&cc::printable(id)),
        None => Err(Stop::error(format!(
            "{}: publish accepted but the reply names no id: {}",
            path.display(),
            reply.line
        ))),
    }
}

/// All of stdin, which must be UTF-8; read no further than a request can carry.
fn read_stdin() -> Result<String, Stop> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(cc::MAX_REQUEST_LINE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Stop::error(format!("stdin: {e}")))?;
    if bytes.len() > cc::MAX_REQUEST_LINE {
        return Err(Stop::error(format!(
            "stdin is over {} bytes, more than a request can carry",
            cc::MAX_REQUEST_LINE
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Stop::error(format!(
            "stdin is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn watch(
    path: &std::path::Path,
    timeout: Duration,
    json: bool,
    args: &WatchArgs,
    out: &mut Out,
) -> Result<(), Stop> {
    let mut control = Control::connect(path, Some(timeout))?;
    let reply = control.request(&cc::watch_request(&args.types, args.name.as_deref()))?;
    if let Some(error) = reply.refusal() {
        return Err(Stop::error(format!("watch refused: {error}")));
    }
    control.set_timeout(None)?;
    while let Some(line) = control.read_line()? {
        if json {
            out.line(&line)?;
            continue;
        }
        match cc::event_view(&line) {
            EventView::Line(text) => out.line(&text)?,
            EventView::Dropped(count) => {
                note(&format!(
                    "(dropped {count} events: this watcher fell behind)"
                ));
            }
        }
    }
    Ok(())
}

fn members(
    path: &std::path::Path,
    timeout: Duration,
    json: bool,
    args: &MembersArgs,
    out: &mut Out,
) -> Result<(), Stop> {
    let keyring = match &args.cluster_key_file {
        Some(file) => Some(gossip_bins::load_keyring(file)?),
        None => None,
    };
    let reply = ask(
        path,
        timeout,
        &cc::simple_request("members"),
        "members",
        json,
        out,
    )?;
    let node = reply.str("node").map_or_else(|| "?".into(), cc::printable);
    let role = reply.str("role").unwrap_or("");
    match (role, args.local) {
        ("seed", _) | ("peer", true) => {
            if json {
                return out.line(&reply.line);
            }
            let entries = cc::parse_members(&reply.fields)
                .map_err(|e| Stop::error(format!("{}: bad members reply: {e}", path.display())))?;
            let head = if role == "seed" {
                format!("{node}  seed  {}", gossip_bins::entries_summary(&entries))
            } else {
                format!(
                    "{node}  peer  knows {} peers (a sample; its seeds hold the Peer List: {})",
                    entries.len(),
                    cc::reply_seeds(&reply.fields).join(", ")
                )
            };
            out.line(&head)?;
            out.text(&gossip_bins::peer_list_table(&entries))
        }
        ("peer", false) => seeds_members(&reply, &node, timeout, keyring.as_ref(), json, out),
        (other, _) => Err(Stop::error(format!(
            "{}: members reply with an unknown role {:?}",
            path.display(),
            other
        ))),
    }
}

/// At a peer: asks each of its seeds for its status, all at once, and prints their view.
fn seeds_members(
    reply: &Reply,
    node: &str,
    timeout: Duration,
    keyring: Option<&Keyring>,
    json: bool,
    out: &mut Out,
) -> Result<(), Stop> {
    let named = cc::reply_seeds(&reply.fields);
    if named.is_empty() {
        return Err(Stop::error(format!(
            "peer {node} names no seeds (--local prints what it knows)"
        )));
    }
    let answers: Vec<Result<(StatusResp, String), String>> = std::thread::scope(|scope| {
        let asks: Vec<_> = named
            .iter()
            .map(|text| {
                scope.spawn(move || {
                    let addr = gossip_bins::resolve(text)?;
                    let (status, raw) = gossip_bins::query_status_with(addr, timeout, keyring)?;
                    match status.role {
                        RoleStatus::Seed(_) => Ok((status, raw)),
                        RoleStatus::Peer(_) => Err(format!("{addr} answered as a peer")),
                    }
                })
            })
            .collect();
        asks.into_iter()
            .map(|ask| {
                ask.join()
                    .unwrap_or_else(|_| Err("the query thread failed".to_string()))
            })
            .collect()
    });
    let mut statuses = Vec::new();
    let mut raws = Vec::new();
    for (seed, answer) in named.iter().zip(answers) {
        match answer {
            Ok((status, raw)) => {
                statuses.push(status);
                raws.push(raw);
            }
            Err(e) => note(&format!("gossipctl: seed {seed} did not answer: {e}")),
        }
    }
    if statuses.is_empty() {
        return Err(Stop::error(format!(
            "none of the {} seeds of {node} answered",
            named.len()
        )));
    }
    if json {
        for raw in &raws {
            out.line(raw)?;
        }
        return Ok(());
    }
    let rows = cc::seeds_view(&statuses);
    out.text(&cc::seeds_view_text(&rows, statuses.len(), named.len()))
}

/// Asks the node to leave; its reply comes when it is done (then it exits).
fn leave(path: &std::path::Path, timeout: Duration, json: bool, out: &mut Out) -> Result<(), Stop> {
    let reply = ask(
        path,
        timeout,
        &cc::simple_request("leave"),
        "leave",
        json,
        out,
    )?;
    if json {
        return out.line(&reply.line);
    }
    let f = &reply.fields;
    let text = match f.get("certified").and_then(serde_json::Value::as_bool) {
        Some(true) => format!(
            "left: LEFT certified by the round of {}; {} neighbours dropped the link",
            cc::string_list(f, "certified_by").join(", "),
            f.get("neighbours").and_then(serde_json::Value::as_u64).unwrap_or(0)
        ),
        Some(false) => "left without a certificate: no seed could certify it (failure detection removes the peer instead)".to_string(),
        None => "stopped: every round finished".to_string(),
    };
    out.line(&text)
}

fn info(path: &std::path::Path, timeout: Duration, json: bool, out: &mut Out) -> Result<(), Stop> {
    let reply = ask(
        path,
        timeout,
        &cc::simple_request("info"),
        "info",
        json,
        out,
    )?;
    if json {
        return out.line(&reply.line);
    }
    out.text(&cc::info_text(&reply.fields))
}
