//! What the suites of this crate need: one node hosted in a thread on a real loopback
//! listener (with or without a cluster key), and the bytes of a request line.

#![allow(dead_code)] // each suite uses its own part

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use gossip_core::wire::auth::Keyring;
use gossip_core::{wire, Message, Settings};
use gossip_driver_mio::{Host, Limits, NodeSpec, Observer, Role};

/// A host running one node in a thread, stopped and joined on drop.
pub struct Running {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a node on `listener` with default settings; `seeds` None means "this node is the
/// only seed". Returns once the node is serving.
pub fn run_node<O: Observer + Send + 'static>(
    role: Role,
    listener: TcpListener,
    seeds: Option<Vec<SocketAddr>>,
    limits: Limits,
    observer: O,
) -> Running {
    run_keyed_node(role, listener, seeds, limits, observer, None)
}

/// Like [`run_node`], with a cluster key (or none).
pub fn run_keyed_node<O: Observer + Send + 'static>(
    role: Role,
    listener: TcpListener,
    seeds: Option<Vec<SocketAddr>>,
    limits: Limits,
    observer: O,
    keyring: Option<Keyring>,
) -> Running {
    let addr = listener.local_addr().expect("addr");
    let seeds = seeds.unwrap_or_else(|| vec![addr]);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut host = Host::new(limits, observer).expect("host");
        host.set_keyring(keyring);
        let spec = NodeSpec {
            role,
            seeds,
            settings: Settings::default(),
            rng_seed: 7,
            advertise: None,
        };
        host.add_node_on(listener, spec).expect("add node");
        tx.send(()).expect("started");
        host.run_until(|_| flag.load(Ordering::SeqCst))
            .expect("run");
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("node started");
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// `msg` as one wire line.
pub fn line(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(msg, 1_767_225_600.0, &mut out);
    out
}
