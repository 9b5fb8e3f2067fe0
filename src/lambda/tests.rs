//! The worker lifecycle without processes: events in, actions out.

use super::*;

const P: &str = "arn:aws:lambda:us-east-1:1:function:pinned:1";
const D: &str = "arn:aws:lambda:us-east-1:1:function:od:1";

fn spec(arn: &str, pinned: bool, timeout: u32) -> Spec {
    Spec {
        function: Function {
            id: arn.rsplit(':').nth(1).unwrap().into(),
            arn: arn.into(),
            system: None,
            pinned,
            timeout,
            memory_size: None,
            binary_encoding: false,
            executable: None,
            exec_args: None,
            runtime: Some("python3.8".into()),
            handler: Some("m.h".into()),
            environment: vec![],
            no_container: true,
            run_as_uid: None,
            run_as_gid: None,
            access_sysfs: false,
            resource_access: vec![],
        },
        refused: None,
    }
}

fn spawns(a: &[Action]) -> Vec<WorkerId> {
    a.iter()
        .filter_map(|a| match a {
            Action::Spawn { worker, .. } => Some(*worker),
            _ => None,
        })
        .collect()
}

/// Starts every spawned worker as pid 1000 + id with token "t<id>".
fn start_all(s: &mut Supervisor) -> Vec<WorkerId> {
    let ws = spawns(&s.take_actions());
    for &w in &ws {
        s.spawned(w, 1000 + w as i32, format!("t{w}"));
    }
    ws
}

#[test]
fn pinned_starts_with_the_core_and_runs_invocations_in_order() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3)], 25, t0);
    let ws = start_all(&mut s);
    assert_eq!(ws.len(), 1);
    let w = ws[0];
    assert!(s.is_live_token("t1") && !s.is_live_token("nope") && !s.is_live_token(""));
    let a = s.invoke(P, b"1".to_vec(), String::new(), true, t0).unwrap();
    let b = s
        .invoke(P, b"2".to_vec(), String::new(), false, t0)
        .unwrap();
    assert!(
        spawns(&s.take_actions()).is_empty(),
        "pinned: never a second worker"
    );
    let d = s.take_work(w, t0).unwrap();
    assert_eq!((d.id, d.payload.as_slice()), (a, &b"1"[..]));
    assert_eq!(s.take_work(w, t0), None, "busy: no second invocation");
    s.post_result(w, a, b"r1".to_vec(), None, t0).unwrap();
    assert!(s.take_result(a).is_err(), "Event results are not kept");
    let d = s.take_work(w, t0).unwrap();
    assert_eq!(d.id, b);
    assert_eq!(s.take_result(b).unwrap(), None);
    s.post_result(w, b, b"r2".to_vec(), Some("Handled".into()), t0)
        .unwrap();
    assert!(s.take_actions().contains(&Action::WakeInvoker(b)));
    let o = s.take_result(b).unwrap().unwrap();
    assert_eq!(
        (o.body.as_slice(), o.error.as_deref()),
        (&b"r2"[..], Some("Handled"))
    );
    assert_eq!(s.counters(0).unwrap().errors, 1);
}

#[test]
fn a_waiting_worker_is_woken_when_work_arrives() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3)], 25, t0);
    let w = start_all(&mut s)[0];
    assert_eq!(s.take_work(w, t0), None);
    let a = s.invoke(P, vec![], String::new(), true, t0).unwrap();
    assert!(s.take_actions().contains(&Action::WakeWorker(w)));
    assert_eq!(s.take_work(w, t0).unwrap().id, a);
}

#[test]
fn timeout_kills_the_worker_answers_unhandled_and_restarts_pinned_with_backoff() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 2)], 25, t0);
    let w = start_all(&mut s)[0];
    let a = s.invoke(P, vec![], String::new(), false, t0).unwrap();
    s.take_work(w, t0).unwrap();
    s.tick(t0 + Duration::from_millis(1999));
    assert!(s.take_result(a).unwrap().is_none());
    s.tick(t0 + Duration::from_secs(2));
    let acts = s.take_actions();
    assert!(acts.contains(&Action::Kill { pid: 1001 }), "{acts:?}");
    let o = s.take_result(a).unwrap().unwrap();
    assert_eq!(o.error.as_deref(), Some("Unhandled"));
    assert!(String::from_utf8_lossy(&o.body).contains("timed out"));
    assert!(!s.is_live_token("t1"), "a stopping worker's token is dead");
    // The exit is reaped; the restart waits 1 s, then 2 s after the next crash.
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(s.exited(1001, t1), Some(0));
    s.tick(t1 + Duration::from_millis(999));
    assert!(spawns(&s.take_actions()).is_empty());
    s.tick(t1 + Duration::from_secs(1));
    let w2 = start_all(&mut s);
    assert_eq!(w2.len(), 1);
    let t2 = t1 + Duration::from_secs(5);
    s.exited(1000 + w2[0] as i32, t2);
    s.tick(t2 + Duration::from_millis(1999));
    assert!(spawns(&s.take_actions()).is_empty());
    assert_eq!(s.next_deadline(), Some(t2 + Duration::from_secs(2)));
    s.tick(t2 + Duration::from_secs(2));
    assert_eq!(start_all(&mut s).len(), 1);
    let c = s.counters(0).unwrap();
    assert_eq!((c.timeouts, c.restarts), (1, 2));
}

#[test]
fn crash_during_an_invocation_is_unhandled() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3)], 25, t0);
    let w = start_all(&mut s)[0];
    let a = s.invoke(P, vec![], String::new(), false, t0).unwrap();
    s.take_work(w, t0).unwrap();
    s.exited(1001, t0);
    let o = s.take_result(a).unwrap().unwrap();
    assert_eq!(o.error.as_deref(), Some("Unhandled"));
}

#[test]
fn on_demand_spawns_per_concurrent_invocation_reuses_idle_and_stops_them_later() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(D, false, 3)], 2, t0);
    assert!(s.take_actions().is_empty(), "on-demand: nothing at start");
    let ids: Vec<InvId> = (0..3)
        .map(|_| s.invoke(D, vec![], String::new(), true, t0).unwrap())
        .collect();
    let ws = start_all(&mut s);
    assert_eq!(ws.len(), 2, "capped by maxConcurrentLimit");
    let d0 = s.take_work(ws[0], t0).unwrap();
    let d1 = s.take_work(ws[1], t0).unwrap();
    assert_eq!((d0.id, d1.id), (ids[0], ids[1]));
    s.post_result(ws[0], d0.id, vec![], None, t0).unwrap();
    assert_eq!(
        s.take_work(ws[0], t0).unwrap().id,
        ids[2],
        "reused, no new worker"
    );
    assert!(spawns(&s.take_actions()).is_empty());
    s.post_result(ws[0], ids[2], vec![], None, t0).unwrap();
    s.post_result(ws[1], d1.id, vec![], None, t0).unwrap();
    // Warm: a later invocation goes to a polling idle worker.
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(s.take_work(ws[0], t1), None);
    let late = s.invoke(D, vec![], String::new(), true, t1).unwrap();
    assert!(spawns(&s.take_actions()).is_empty());
    assert_eq!(s.take_work(ws[0], t1).unwrap().id, late);
    s.post_result(ws[0], late, vec![], None, t1).unwrap();
    // Idle long enough: both stopped.
    s.take_work(ws[0], t1);
    s.take_work(ws[1], t1);
    s.tick(t1 + Duration::from_secs(limits::ON_DEMAND_IDLE_SECS));
    let kills = s
        .take_actions()
        .iter()
        .filter(|a| matches!(a, Action::Kill { .. }))
        .count();
    assert_eq!(kills, 2);
}

#[test]
fn full_queue_drops_events_and_answers_unhandled_to_request_response() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3)], 25, t0);
    start_all(&mut s);
    for _ in 0..limits::FUNCTION_QUEUE_DEPTH {
        s.invoke(P, vec![], String::new(), true, t0).unwrap();
    }
    assert_eq!(
        s.invoke(P, vec![], String::new(), true, t0)
            .unwrap_err()
            .status,
        429
    );
    let r = s.invoke(P, vec![], String::new(), false, t0).unwrap();
    let o = s.take_result(r).unwrap().unwrap();
    assert_eq!(o.error.as_deref(), Some("Unhandled"));
    assert_eq!(s.counters(0).unwrap().dropped, 2);
    assert_eq!(
        s.invoke(
            "arn:aws:lambda:x:1:function:none",
            vec![],
            String::new(),
            true,
            t0
        )
        .unwrap_err()
        .status,
        404
    );
}

#[test]
fn unqualified_arn_finds_the_function() {
    let s = Supervisor::new(vec![spec(D, false, 3)], 2, Instant::now());
    assert_eq!(s.find("arn:aws:lambda:us-east-1:1:function:od"), Some(0));
    assert_eq!(s.find("arn:aws:lambda:us-east-1:1:function:od:2"), None);
}

#[test]
fn failed_initialization_stops_the_worker() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3)], 25, t0);
    let w = start_all(&mut s)[0];
    s.initialized(w, false);
    assert!(s.take_actions().contains(&Action::Kill { pid: 1001 }));
    assert!(!s.is_live_token("t1"));
}

#[test]
fn an_on_demand_worker_that_never_asks_for_work_is_killed_after_the_start_timeout() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3), spec(D, false, 3)], 25, t0);
    s.invoke(D, vec![], String::new(), true, t0).unwrap();
    start_all(&mut s);
    s.tick(t0 + Duration::from_secs(limits::WORKER_START_TIMEOUT_SECS));
    let kills: Vec<Action> = s
        .take_actions()
        .into_iter()
        .filter(|a| matches!(a, Action::Kill { .. }))
        .collect();
    // Worker 1 is the pinned one (its module code may loop for ever), 2 the on-demand one.
    assert_eq!(kills, vec![Action::Kill { pid: 1002 }]);
}

#[test]
fn apply_restarts_only_changed_functions() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3), spec(D, false, 3)], 25, t0);
    start_all(&mut s);
    // Unchanged: nothing happens.
    s.apply(vec![spec(P, true, 3), spec(D, false, 3)], t0);
    assert!(s.take_actions().is_empty());
    assert!(s.is_live_token("t1"));
    // Pinned timeout changed: its worker is killed and a new one spawned.
    s.apply(vec![spec(P, true, 9), spec(D, false, 3)], t0);
    let acts = s.take_actions();
    assert!(acts.contains(&Action::Kill { pid: 1001 }), "{acts:?}");
    assert_eq!(spawns(&acts).len(), 1);
    // Removed: gone from status.
    s.apply(vec![spec(D, false, 3)], t0);
    assert_eq!(s.functions().count(), 1);
}

#[test]
fn results_nobody_fetches_expire() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![], 25, t0);
    let id = s.complete(b"doc".to_vec(), None, t0);
    s.tick(t0 + Duration::from_secs(limits::RESULT_KEEP_SECS));
    assert!(s.take_result(id).is_err());
}

#[test]
fn a_due_restart_waiting_for_the_old_exit_is_no_deadline() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 1)], 25, t0);
    let w = start_all(&mut s)[0];
    let a = s.invoke(P, vec![], String::new(), true, t0).unwrap();
    assert_eq!(s.take_work(w, t0).unwrap().id, a);
    let t1 = t0 + Duration::from_secs(1);
    s.tick(t1);
    // Killed, not yet reaped: nothing to wake up for until the exit arrives.
    assert_eq!(s.next_deadline(), None);
    s.exited(1001, t1);
    assert_eq!(s.next_deadline(), Some(t1 + Duration::from_secs(1)));
}

#[test]
fn restart_replaces_the_workers_of_one_function() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3), spec(D, false, 3)], 25, t0);
    let w = start_all(&mut s)[0];
    let a = s.invoke(P, vec![], String::new(), false, t0).unwrap();
    s.take_work(w, t0).unwrap();
    assert!(s.restart(P, t0));
    let acts = s.take_actions();
    assert!(acts.contains(&Action::Kill { pid: 1001 }), "{acts:?}");
    assert_eq!(spawns(&acts).len(), 1, "pinned: started again at once");
    assert_eq!(
        s.take_result(a).unwrap().unwrap().error.as_deref(),
        Some("Unhandled")
    );
    assert!(!s.restart("arn:aws:lambda:x:1:function:none:1", t0));
}

#[test]
fn a_full_core_evicts_an_idle_worker_of_another_function() {
    const E: &str = "arn:aws:lambda:us-east-1:1:function:other:1";
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(D, false, 3), spec(E, false, 3)], 1, t0);
    let a = s.invoke(D, vec![], String::new(), true, t0).unwrap();
    let w = start_all(&mut s)[0];
    assert_eq!(s.take_work(w, t0).unwrap().id, a);
    s.post_result(w, a, vec![], None, t0).unwrap();
    assert_eq!(s.take_work(w, t0), None, "idle and polling");
    s.invoke(E, vec![], String::new(), true, t0).unwrap();
    let acts = s.take_actions();
    assert!(acts.contains(&Action::Kill { pid: 1001 }), "{acts:?}");
    assert!(spawns(&acts).is_empty(), "the slot frees on the exit");
    s.exited(1001, t0);
    assert_eq!(spawns(&s.take_actions()).len(), 1, "E gets the slot");
}

#[test]
fn nothing_starts_once_stopping() {
    let t0 = Instant::now();
    let mut s = Supervisor::new(vec![spec(P, true, 3), spec(D, false, 3)], 25, t0);
    start_all(&mut s);
    assert_eq!(s.stop_all(), vec![1001]);
    s.invoke(D, vec![], String::new(), true, t0).unwrap();
    s.exited(1001, t0);
    s.tick(t0 + Duration::from_secs(20));
    assert!(spawns(&s.take_actions()).is_empty());
    assert_eq!(s.next_deadline(), None);
}
