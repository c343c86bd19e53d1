//! The `sim` command's outputs for people: `--html FILE`, `--json FILE`, `--json` alone, and
//! the progress line on stderr that `--quiet` silences.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const SMALL: &[&str] = &[
    "--seeds",
    "3",
    "--peers",
    "30",
    "--max-gossip",
    "2",
    "--crash-peers",
    "0.1",
    "--partition",
    "sym:0.3:5-10",
    "--seed",
    "7",
];

fn sim(extra: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(SMALL)
        .args(extra)
        .output()
        .expect("runs sim");
    assert!(
        out.status.success(),
        "sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sim-report-{}-{name}", std::process::id()))
}

#[test]
fn html_and_json_files_hold_the_report_and_its_series() {
    let (html, json) = (temp("a.html"), temp("a.json"));
    let out = sim(&[
        "--html",
        html.to_str().expect("utf-8 path"),
        "--json",
        json.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("invariants: all held"), "{stdout}");
    let page = std::fs::read_to_string(&html).expect("the HTML was written");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 7);
    assert!(!page.contains("NaN") && !page.contains("inf"));
    // The command shown leaves out where output went.
    assert!(page.contains("<code>sim --seeds 3 --peers 30"));
    assert!(!page.contains("a.html"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("written"))
        .expect("the JSON parses");
    let n = v["series"]["t_s"].as_array().map_or(0, Vec::len);
    let end_s = v["sim_time_s"].as_f64().expect("sim_time_s");
    assert_eq!(n, end_s.ceil() as usize);
    for key in [
        "peers_up",
        "delivered_ratio",
        "lost_per_s",
        "alive_at_seeds_min",
    ] {
        assert_eq!(v["series"][key].as_array().map(Vec::len), Some(n), "{key}");
    }
    assert_eq!(v["detection"].as_array().map(Vec::len), Some(3));
    // Coverage over time: one median and one worst share per offset; the hops histogram
    // counts every first-time delivery, up to the most hops.
    let points = v["coverage"]["t_ms"].as_array().map_or(0, Vec::len);
    assert!(points > 1, "coverage offsets");
    for key in ["median", "worst"] {
        assert_eq!(
            v["coverage"][key].as_array().map(Vec::len),
            Some(points),
            "{key}"
        );
    }
    let hops: Vec<u64> = v["hops_histogram"]
        .as_array()
        .expect("hops_histogram")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let first = v["series"]["first_deliveries"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(Value::as_u64);
    assert_eq!(Some(hops.iter().sum::<u64>()), first);
    assert_eq!(
        hops.len() as u64,
        v["hops_max"].as_u64().expect("hops_max") + 1
    );
    assert!(page.contains("Gossip coverage (") && page.contains("Hops of first-time"));
    assert!(stdout.contains(v["trace_hash"].as_str().expect("trace_hash")));
    let _ = std::fs::remove_file(html);
    let _ = std::fs::remove_file(json);
}

#[test]
fn json_alone_prints_the_report_on_stdout() {
    let out = sim(&["--json", "--quiet"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["peers"], 30);
    assert!(v.get("series").is_none());
}

#[test]
fn the_progress_line_shows_on_stderr_unless_quiet() {
    let loud = sim(&["--progress-after", "0"]);
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(
        err.starts_with("sim: ") && err.contains("s simulated") && err.contains("events/s"),
        "{err}"
    );
    let quiet = sim(&["--progress-after", "0", "--quiet"]);
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
    // The run is the same either way.
    let hash = |o: &Output| {
        let s = String::from_utf8_lossy(&o.stdout);
        s.split("trace hash ").nth(1).map(|t| t[..16].to_string())
    };
    assert_eq!(hash(&loud), hash(&quiet));
    assert!(hash(&loud).is_some());
}

/// `--soak N` runs N random schedules on several threads and says how many broke; a
/// schedule replays alone with `--schedule SEED` (the line a broken one prints), the same
/// run every time.
#[test]
fn soak_runs_random_schedules_and_one_replays_alone() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(args)
            .output()
            .expect("runs sim");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let soak = run(&[
        "--soak",
        "3",
        "--soak-seed",
        "11",
        "--soak-peers",
        "6",
        "--jobs",
        "2",
    ]);
    assert!(
        soak.contains("soak: 3 schedules from seed 11 on 2 threads"),
        "{soak}"
    );
    assert!(soak.contains("; 0 broken"), "{soak}");
    let replay = [
        "--schedule",
        "12",
        "--soak-peers",
        "6",
        "--soak-mode",
        "both",
        "--quiet",
    ];
    let (a, b) = (run(&replay), run(&replay));
    assert!(a.starts_with("seed 12 · "), "{a}");
    assert!(a.contains("invariants: all held"), "{a}");
    let hash = |t: &str| t.split("trace hash ").nth(1).map(|h| h[..16].to_string());
    assert!(hash(&a).is_some());
    assert_eq!(hash(&a), hash(&b), "a schedule replays the same run");
    let bad = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["--soak", "1", "--soak-mode", "eager"])
        .output()
        .expect("runs sim");
    assert_eq!(bad.status.code(), Some(2));
}
