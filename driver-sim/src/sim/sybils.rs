//! Sybil peers ([`crate::Sybils`]): admitted peers whose node runs unchanged, but what other
//! peers send them is answered as their attack says, with messages a real attacker could
//! send over the wire; their own answers to probes are rewritten the same way.

use gossip_core::msg::{GossipAck, HelloAck, Message};

use super::World;
use crate::config::SybilAttack;

/// The degree a Sybil claims (the most a `PONG` can say).
const CLAIMED_DEGREE: u16 = u16::MAX;

impl World {
    /// True if node `node` is a Sybil peer.
    #[inline]
    pub(super) fn is_sybil(&self, node: u32) -> bool {
        self.sybil.get(node as usize).copied().unwrap_or(false)
    }

    fn sybil_attack(&self) -> Option<SybilAttack> {
        self.cfg.sybils.as_ref().map(|s| s.attack)
    }

    /// What Sybil `node` answers to `msg` in its node's stead, or `None` to let its node
    /// handle it (registration, probes, Peer Lists, witness requests: it looks honest).
    pub(super) fn sybil_answer(&mut self, msg: &Message, node: u32) -> Option<Message> {
        match self.sybil_attack()? {
            SybilAttack::Degree => match msg {
                // Every link offered is taken (and then starved).
                Message::Hello(_) => {
                    let j = node - self.addrs.seeds;
                    let incarnation =
                        (self.checker.peers().get(j as usize)).and_then(|p| p.incarnation);
                    Some(Message::HelloAck(Box::new(HelloAck {
                        accepted: true,
                        peer: self.addrs.endpoint(node),
                        degree: u32::from(CLAIMED_DEGREE),
                        incarnation,
                    })))
                }
                // Every gossip is acked as new, and goes no further.
                Message::Gossip(g) => Some(Message::GossipAck(GossipAck {
                    accepted: true,
                    duplicate: false,
                    prune: false,
                    app: g.body.app.is_some(),
                })),
                // The repair is refused as a node of the original refuses it.
                Message::Digest(_) | Message::IHave(_) | Message::Pull(_) => {
                    Some(Message::error("unknown message type"))
                }
                _ => None,
            },
        }
    }

    /// A Sybil's own reply, rewritten by its attack before it leaves.
    pub(super) fn sybil_reply(&self, msg: &mut Message) {
        if let (Some(SybilAttack::Degree), Message::Pong(p)) = (self.sybil_attack(), msg) {
            p.degree = Some(CLAIMED_DEGREE);
        }
    }
}
