//! The node's plane state machine driven deterministically: no sockets, no disk, no clock.

use std::collections::BTreeMap;

use hashmesh_plane::core::node::{
    CommitInput, CommittedRoute, NodePlane, PeerFault, Persist, Restored, WRITES_IN_FLIGHT_MAX,
};
use hashmesh_protocol::limits::{GROUPS_PER_AGENT_MAX, INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX};
use hashmesh_protocol::plane::PlaneMsg;
use hashmesh_protocol::{AgentId, DirectiveId, GroupId, RouteTarget};

const A: AgentId = AgentId([1; 32]);
const B: AgentId = AgentId([2; 32]);

fn group(n: u32) -> GroupId {
    format!("pool-a/g-{n}").parse().unwrap()
}

fn route(g: u32, d: u8, height: u64) -> CommittedRoute {
    CommittedRoute {
        group: group(g),
        directive: DirectiveId([d; 32]),
        height,
        targets: vec![RouteTarget { endpoint: "pool-a/ep-1".parse().unwrap(), weight_bp: 10_000 }],
    }
}

fn commit(routes: Vec<CommittedRoute>) -> CommitInput {
    CommitInput { routes, ..CommitInput::default() }
}

fn plane(groups: &[u32]) -> NodePlane {
    let gs: Vec<GroupId> = groups.iter().map(|g| group(*g)).collect();
    NodePlane::new(&BTreeMap::from([(A, gs.clone()), (B, gs)]), Restored::default(), 8.0)
}

/// Persist everything staged (as a driver would), returning the ops.
fn persist(p: &mut NodePlane) -> Vec<Persist> {
    let mut ops = Vec::new();
    while let Some(b) = p.poll_persist() {
        p.handle_persisted(b.id);
        ops.extend(b.ops);
    }
    ops
}

/// Sequences transmitted to `agent` now (marking each batch sent).
fn transmit(p: &mut NodePlane, agent: AgentId) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(t) = p.poll_transmit() {
        p.handle_sent(t.agent, t.session);
        if t.agent == agent {
            seqs.extend(t.instructions.iter().map(|i| i.seq));
        }
    }
    seqs
}

fn ack(p: &mut NodePlane, agent: AgentId, session: u64, seq: u64, d: u8) -> Result<(), PeerFault> {
    p.handle_message(agent, session, PlaneMsg::Ack { seq, directive: DirectiveId([d; 32]), applied_at_ms: 5 }, 10)
}

#[test]
fn nothing_is_sent_before_it_is_durable_and_delivery_is_in_order() {
    let mut p = plane(&[1]);
    let s = p.handle_connect(A).unwrap();
    p.handle_commit(&commit(vec![route(1, 1, 1)]), 0);
    assert!(p.poll_transmit().is_none(), "not durable yet");
    let batch = p.poll_persist().unwrap();
    assert!(batch.durable, "instructions are flushed before they are sent");
    p.handle_persisted(batch.id);
    let ops = batch.ops;
    assert!(ops.iter().any(|o| matches!(o, Persist::Instruction { agent, .. } if *agent == A)));
    p.handle_commit(&commit(vec![route(1, 2, 2)]), 0);
    persist(&mut p);
    assert_eq!(transmit(&mut p, A), vec![1, 2]);
    let _ = s;
}

#[test]
fn a_bounded_number_of_batches_in_flight_per_session() {
    let mut p = plane(&[1]);
    p.handle_connect(A).unwrap();
    let mut out = Vec::new();
    for d in 1..=WRITES_IN_FLIGHT_MAX as u8 + 1 {
        p.handle_commit(&commit(vec![route(1, d, u64::from(d))]), 0);
        persist(&mut p);
        while let Some(t) = p.poll_transmit() {
            if t.agent == A {
                out.push(t);
            }
        }
    }
    assert_eq!(out.len(), WRITES_IN_FLIGHT_MAX as usize, "A's writer is busy with the bound");
    p.handle_sent(out[0].agent, out[0].session);
    assert_eq!(transmit(&mut p, A), vec![u64::from(WRITES_IN_FLIGHT_MAX) + 1]);
}

#[test]
fn a_reconnect_resends_what_was_not_acknowledged() {
    let mut p = plane(&[1]);
    let s1 = p.handle_connect(A).unwrap();
    p.handle_commit(&commit(vec![route(1, 1, 1)]), 0);
    p.handle_commit(&commit(vec![route(1, 2, 2)]), 0);
    persist(&mut p);
    assert_eq!(transmit(&mut p, A), vec![1, 2]);
    ack(&mut p, A, s1, 1, 1).unwrap();
    p.handle_disconnect(A, s1);
    let s2 = p.handle_connect(A).unwrap();
    persist(&mut p);
    assert_eq!(transmit(&mut p, A), vec![2], "resumes after the acknowledged seq");
    ack(&mut p, A, s2, 2, 2).unwrap();
    assert_eq!(p.agents(0)[0].outstanding, 0);
}

#[test]
fn an_ack_prunes_and_becomes_a_receipt_once() {
    let mut p = plane(&[1]);
    let s = p.handle_connect(A).unwrap();
    p.handle_commit(&commit(vec![route(1, 1, 1)]), 0);
    persist(&mut p);
    transmit(&mut p, A);
    ack(&mut p, A, s, 1, 1).unwrap();
    ack(&mut p, A, s, 1, 1).unwrap(); // idempotent
    let batch = p.poll_persist().unwrap();
    assert!(!batch.durable, "acknowledgements need no flush: a lost one is acknowledged again");
    p.handle_persisted(batch.id);
    let ops = batch.ops;
    assert!(ops.iter().any(|o| matches!(o, Persist::Prune { agent, seqs } if *agent == A && *seqs == vec![1])));
    assert_eq!(ops.iter().filter(|o| matches!(o, Persist::Receipt(_))).count(), 1);
    assert_eq!(p.pending_receipts(10).len(), 1);
    // The receipt commits: it is forgotten.
    p.handle_commit(&CommitInput { receipts: vec![(DirectiveId([1; 32]), A)], ..CommitInput::default() }, 0);
    assert!(p.pending_receipts(10).is_empty());
    assert!(persist(&mut p).iter().any(|o| matches!(o, Persist::ReceiptDone { .. })));
}

#[test]
fn acks_of_unknown_or_unsent_instructions_are_faults_and_change_nothing() {
    let mut p = plane(&[1]);
    let s = p.handle_connect(A).unwrap();
    p.handle_commit(&commit(vec![route(1, 1, 1)]), 0);
    persist(&mut p);
    assert!(matches!(ack(&mut p, A, s, 1, 1), Err(PeerFault::UnknownAck { .. })), "not sent yet");
    transmit(&mut p, A);
    assert!(matches!(ack(&mut p, A, s, 1, 9), Err(PeerFault::UnknownAck { .. })), "wrong directive");
    assert!(matches!(ack(&mut p, A, s, 7, 1), Err(PeerFault::UnknownAck { .. })), "no such seq");
    assert_eq!(p.agents(0)[0].acked_seq, 0);
    assert!(matches!(
        p.handle_message(A, s, PlaneMsg::Hello { agent: B, applied_seq: 0 }, 0),
        Err(PeerFault::BadHello(_))
    ));
    assert!(p.handle_connect(AgentId([9; 32])).is_err(), "unregistered");
}

#[test]
fn the_same_route_is_not_queued_twice_and_older_routes_never() {
    let mut p = plane(&[1]);
    p.handle_commit(&commit(vec![route(1, 2, 5)]), 0);
    p.handle_commit(&commit(vec![route(1, 2, 5)]), 0);
    p.handle_commit(&commit(vec![route(1, 1, 4)]), 0);
    assert_eq!(p.agents(0)[0].outstanding, 1);
}

#[test]
fn an_agent_that_never_acks_is_bounded_and_resynchronised() {
    let n = GROUPS_PER_AGENT_MAX as u32;
    let groups: Vec<u32> = (1..=n).collect();
    let mut p = plane(&groups);
    p.handle_connect(A).unwrap();
    // Every group's route changes five times; the agent acknowledges nothing.
    for round in 1..=5u8 {
        for g in 1..=n {
            p.handle_commit(&commit(vec![route(g, round, u64::from(round))]), 0);
            assert!(p.agents(0)[0].outstanding <= INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX as u64);
        }
    }
    persist(&mut p);
    assert!(p.counters().resyncs >= 1, "{:?}", p.counters());
    // After the compaction the queue holds at most one route per group, the latest ones.
    let sent = transmit(&mut p, A).len();
    assert!(sent <= INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX, "{sent}");
}

#[test]
fn a_restart_resumes_from_what_was_persisted() {
    let mut p = plane(&[1]);
    p.handle_commit(&commit(vec![route(1, 1, 1)]), 0);
    let ops = persist(&mut p);
    // Rebuild `Restored` from the ops as a store would.
    let mut r = Restored::default();
    for op in ops {
        match op {
            Persist::Instruction { agent, instruction } => r.queues.entry(agent).or_default().1.push(instruction),
            Persist::Cursor { agent, next_seq, acked_seq } => {
                r.queues.entry(agent).or_default().0 = (next_seq, acked_seq)
            }
            Persist::Last { agent, instruction } => r.last.entry(agent).or_default().push(instruction),
            _ => {}
        }
    }
    let mut q = NodePlane::new(&BTreeMap::from([(A, vec![group(1)]), (B, vec![group(1)])]), r, 8.0);
    q.handle_commit(&commit(vec![route(1, 1, 1)]), 0);
    assert!(q.poll_persist().is_none(), "the committed route is already queued: not again");
    q.handle_connect(A).unwrap();
    assert_eq!(transmit(&mut q, A), vec![1]);
}

fn window(agent_end: u64, accepted: u64) -> hashmesh_protocol::EndpointWindow {
    hashmesh_protocol::EndpointWindow {
        endpoint: "pool-a/ep-1".parse().unwrap(),
        start_ms: agent_end - 2000,
        end_ms: agent_end,
        accepted,
        rejected: 0,
        stale: 0,
        accepted_hashes: u128::from(accepted) * 4096,
        latency: hashmesh_protocol::LatencyBuckets { sum_us: 1000, buckets: vec![(1000, 1)] },
        down: false,
        miners: 1,
        in_flight: 0,
        standby_hashes: 0,
    }
}

#[test]
fn measurement_windows_are_counted_once_per_epoch_and_bad_ones_change_nothing() {
    let mut p = plane(&[1]);
    let s = p.handle_connect(A).unwrap();
    let msg = |windows| PlaneMsg::Measurements { at_ms: 0, windows };
    p.handle_message(A, s, msg(vec![window(2000, 3)]), 10).unwrap();
    // The same window again (a resend) is not counted twice.
    p.handle_message(A, s, msg(vec![window(2000, 3)]), 10).unwrap();
    let sb = p.handle_connect(B).unwrap();
    p.handle_message(B, sb, msg(vec![window(2000, 4)]), 10).unwrap();
    assert_eq!((p.counters().windows_recorded, p.counters().windows_dropped), (2, 1));
    // Malformed or too many: the session is at fault and nothing of the message counts.
    let mut bad = window(4000, 100);
    bad.start_ms = bad.end_ms;
    assert!(matches!(p.handle_message(A, s, msg(vec![window(4000, 100), bad]), 10), Err(PeerFault::BadWindow(_))));
    let many = (0..=hashmesh_protocol::plane::MEASUREMENT_WINDOWS_MAX as u64).map(|i| window(10_000 + i, 1)).collect();
    assert!(matches!(p.handle_message(A, s, msg(many), 10), Err(PeerFault::TooManyWindows(_))));
    let m = p.take_measurements();
    assert_eq!(m[&"pool-a/ep-1".parse().unwrap()].shares_accepted, 7, "two agents' windows, summed once");
    assert!(p.take_measurements().is_empty(), "an epoch with no windows measures nothing");
}
