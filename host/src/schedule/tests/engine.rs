use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::{EVERY_DAY, eventually, plan, settle, ts};
use crate::schedule::{
    Backoff, Clock, Limits, ManualClock, MemoryWindowLog, Plan, Runner, Scheduler, SchedulerHandle,
    Window, WindowOutcome,
};

#[derive(Debug, Clone, PartialEq)]
struct Call {
    instance: String,
    window: String,
    attempt: u32,
    delayed: bool,
    at: Timestamp,
}

/// Records every call; fails an instance's first `failures` attempts;
/// holds every run while the gate is closed; counts how many run at once.
struct TestRunner {
    clock: ManualClock,
    calls: Mutex<Vec<Call>>,
    failures: u32,
    gate: watch::Sender<bool>,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    now: usize,
    max: usize,
    per_storage_now: HashMap<String, usize>,
    per_storage_max: HashMap<String, usize>,
}

impl TestRunner {
    fn new(clock: &ManualClock) -> TestRunner {
        TestRunner {
            clock: clock.clone(),
            calls: Mutex::new(Vec::new()),
            failures: 0,
            gate: watch::Sender::new(true),
            running: Mutex::new(Running::default()),
        }
    }

    fn failing(clock: &ManualClock, failures: u32) -> TestRunner {
        TestRunner {
            failures,
            ..TestRunner::new(clock)
        }
    }

    fn gated(clock: &ManualClock) -> TestRunner {
        let runner = TestRunner::new(clock);
        runner.gate.send_replace(false);
        runner
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn running_now(&self) -> usize {
        self.running.lock().unwrap().now
    }

    fn max_running(&self) -> usize {
        self.running.lock().unwrap().max
    }

    fn running_on(&self, storage: &str) -> Option<usize> {
        self.running
            .lock()
            .unwrap()
            .per_storage_now
            .get(storage)
            .copied()
    }

    fn max_running_on(&self, storage: &str) -> Option<usize> {
        self.running
            .lock()
            .unwrap()
            .per_storage_max
            .get(storage)
            .copied()
    }
}

/// The storage an instance uses in these tests: the part before the dash.
fn storage_of(instance: &str) -> String {
    instance.split('-').next().unwrap().to_owned()
}

#[async_trait::async_trait]
impl Runner for TestRunner {
    async fn run(&self, window: &Window, attempt: u32, delayed: bool) -> Result<(), String> {
        self.calls.lock().unwrap().push(Call {
            instance: window.instance.clone(),
            window: window.id.clone(),
            attempt,
            delayed,
            at: self.clock.now(),
        });
        let storage = storage_of(&window.instance);
        {
            let mut r = self.running.lock().unwrap();
            r.now += 1;
            r.max = r.max.max(r.now);
            let n = r.per_storage_now.entry(storage.clone()).or_default();
            *n += 1;
            let n = *n;
            let max = r.per_storage_max.entry(storage.clone()).or_default();
            *max = (*max).max(n);
        }
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        {
            let mut r = self.running.lock().unwrap();
            r.now -= 1;
            *r.per_storage_now.get_mut(&storage).unwrap() -= 1;
        }
        if attempt <= self.failures {
            Err(format!("attempt {attempt} failed"))
        } else {
            Ok(())
        }
    }
}

fn limits(global: usize, per_storage: usize) -> Limits {
    Limits {
        global: NonZeroUsize::new(global).unwrap(),
        per_storage: NonZeroUsize::new(per_storage).unwrap(),
        storages: HashMap::new(),
    }
}

fn start(
    clock: &ManualClock,
    runner: &Arc<TestRunner>,
    log: &Arc<MemoryWindowLog>,
    limits: Limits,
    plans: Vec<Plan>,
) -> SchedulerHandle {
    Scheduler::new(Arc::new(clock.clone()), runner.clone(), log.clone(), limits).spawn(plans)
}

/// A daily 02:00-03:00 UTC plan for `instance`, on storage `storage_of(instance)`.
fn daily(instance: &str) -> Plan {
    Plan {
        storage: storage_of(instance),
        ..plan(instance, "UTC", EVERY_DAY, (2, 0), (3, 0))
    }
}

const MIDNIGHT: &str = "2026-11-21T00:00:00Z";

#[tokio::test]
async fn a_due_window_runs_exactly_once() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::new(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let p = daily("s1-a");
    let w = p.window_at_or_after(clock.now()).unwrap();
    let handle = start(&clock, &runner, &log, Limits::default(), vec![p.clone()]);

    eventually("the loop to sleep until the planned start", || {
        clock.sleepers() == [w.planned_start]
    })
    .await;
    assert_eq!(
        runner.call_count(),
        0,
        "nothing runs before the planned start"
    );

    clock.set(w.planned_start);
    eventually("the run", || log.outcome("s1-a", &w.id).is_some()).await;
    assert_eq!(
        runner.calls(),
        [Call {
            instance: "s1-a".into(),
            window: w.id.clone(),
            attempt: 1,
            delayed: false,
            at: w.planned_start
        }]
    );
    assert_eq!(
        log.outcome("s1-a", &w.id),
        Some(WindowOutcome::Succeeded {
            attempts: 1,
            delayed: false
        })
    );

    // The rest of the window passes without a second run; the next day's
    // window is the next thing slept on.
    let next = p.window_at_or_after(w.closes).unwrap();
    eventually("the loop to sleep until tomorrow", || {
        clock.sleepers() == [next.planned_start]
    })
    .await;
    clock.set(ts("2026-11-21T02:59:59Z"));
    settle().await;
    assert_eq!(runner.call_count(), 1);
    assert_eq!(log.record_calls(), 1);

    clock.set(next.planned_start);
    eventually("tomorrow's run", || runner.call_count() == 2).await;
    assert_eq!(runner.calls()[1].window, "2026-11-22");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_restart_inside_an_open_window_runs_it_late_once() {
    let p = daily("s1-a");
    let w = p.window_at_or_after(ts(MIDNIGHT)).unwrap();
    let clock = ManualClock::new(w.planned_start + jiff::SignedDuration::from_mins(10));
    let runner = Arc::new(TestRunner::new(&clock));
    let log = Arc::new(MemoryWindowLog::new());

    let handle = start(&clock, &runner, &log, Limits::default(), vec![p.clone()]);
    eventually("the late run", || log.outcome("s1-a", &w.id).is_some()).await;
    assert_eq!(runner.calls()[0].attempt, 1);
    assert!(
        runner.calls()[0].delayed,
        "started 10 min after its planned start"
    );
    assert_eq!(
        log.outcome("s1-a", &w.id),
        Some(WindowOutcome::Succeeded {
            attempts: 1,
            delayed: true
        })
    );
    handle.shutdown().await;

    // Another restart in the same window: it is done, so it does not run.
    clock.advance(Duration::from_secs(60));
    let handle = start(&clock, &runner, &log, Limits::default(), vec![p]);
    settle().await;
    assert_eq!(runner.call_count(), 1);
    assert_eq!(log.record_calls(), 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_restart_before_the_planned_start_is_not_delayed() {
    let p = daily("s1-a");
    let w = p.window_at_or_after(ts(MIDNIGHT)).unwrap();
    // The window is open, the planned start still ahead.
    let clock = ManualClock::new(w.opens);
    let runner = Arc::new(TestRunner::new(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let handle = start(&clock, &runner, &log, Limits::default(), vec![p]);
    if w.planned_start > w.opens {
        eventually("the loop to sleep", || {
            clock.sleepers() == [w.planned_start]
        })
        .await;
        assert_eq!(runner.call_count(), 0);
        clock.set(w.planned_start);
    }
    eventually("the run", || runner.call_count() == 1).await;
    assert!(!runner.calls()[0].delayed);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_restart_after_the_window_closed_does_not_run_it() {
    let p = daily("s1-a");
    let w = p.window_at_or_after(ts(MIDNIGHT)).unwrap();
    let clock = ManualClock::new(w.closes);
    let runner = Arc::new(TestRunner::new(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let next = p.window_at_or_after(w.closes).unwrap();

    let handle = start(&clock, &runner, &log, Limits::default(), vec![p]);
    eventually("the loop to sleep until tomorrow", || {
        clock.sleepers() == [next.planned_start]
    })
    .await;
    assert_eq!(runner.call_count(), 0);
    assert_eq!(
        log.outcome("s1-a", &w.id),
        None,
        "a window never seen open is not recorded"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn failed_attempts_retry_with_backoff_and_stop_at_the_window_end() {
    let p = daily("s1-a");
    let w = p.window_at_or_after(ts(MIDNIGHT)).unwrap();
    let clock = ManualClock::new(w.planned_start);
    let runner = Arc::new(TestRunner::failing(&clock, u32::MAX));
    let log = Arc::new(MemoryWindowLog::new());
    let backoff = Backoff {
        first: Duration::from_secs(60),
        max: Duration::from_secs(240),
    };
    let handle = Scheduler::new(
        Arc::new(clock.clone()),
        runner.clone(),
        log.clone(),
        Limits::default(),
    )
    .with_backoff(backoff)
    .spawn(vec![p]);

    // Drive time to each retry the task sleeps for, until it gives up.
    let mut attempts = 1;
    loop {
        eventually("the attempt", || runner.call_count() == attempts).await;
        let retry = async {
            loop {
                if log.outcome("s1-a", &w.id).is_some() {
                    return None;
                }
                if let Some(t) = clock.sleepers().into_iter().find(|t| *t < w.closes) {
                    return Some(t);
                }
                tokio::task::yield_now().await;
            }
        };
        let Some(retry_at) = tokio::time::timeout(Duration::from_secs(5), retry)
            .await
            .unwrap()
        else {
            break;
        };
        clock.set(retry_at);
        attempts += 1;
    }

    let calls = runner.calls();
    let gaps: Vec<i64> = calls
        .windows(2)
        .map(|c| c[1].at.duration_since(c[0].at).as_secs())
        .collect();
    let mut expected = vec![60, 120, 240];
    expected.resize(gaps.len(), 240);
    assert_eq!(
        gaps, expected,
        "backoff doubles from 1 min and is capped at 4 min"
    );
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        (1..=calls.len() as u32).collect::<Vec<_>>()
    );
    let last = calls.last().unwrap().at;
    assert!(last < w.closes);
    assert!(
        last + jiff::SignedDuration::from_secs(240) >= w.closes,
        "stopped while a retry still fit"
    );
    assert!(calls.iter().all(|c| !c.delayed));
    match log.outcome("s1-a", &w.id) {
        Some(WindowOutcome::Failed { attempts, reason }) => {
            assert_eq!(attempts as usize, calls.len());
            assert!(
                reason.contains(&format!("attempt {attempts} failed")),
                "{reason}"
            );
        }
        other => panic!("expected a failed window, got {other:?}"),
    }

    // A failed window is done: a restart inside it does not run it again.
    handle.shutdown().await;
    let handle = start(
        &clock,
        &runner,
        &log,
        Limits::default(),
        vec![daily("s1-a")],
    );
    settle().await;
    assert_eq!(runner.call_count(), calls.len());
    handle.shutdown().await;
}

#[tokio::test]
async fn a_retry_that_succeeds_records_the_attempts_it_took() {
    let p = daily("s1-a");
    let w = p.window_at_or_after(ts(MIDNIGHT)).unwrap();
    let clock = ManualClock::new(w.planned_start);
    let runner = Arc::new(TestRunner::failing(&clock, 2));
    let log = Arc::new(MemoryWindowLog::new());
    let handle = start(&clock, &runner, &log, Limits::default(), vec![p]);

    let first_retry = w.planned_start + jiff::SignedDuration::from_secs(60);
    eventually("the first retry to be slept on", || {
        clock.sleepers().contains(&first_retry)
    })
    .await;
    clock.set(first_retry);
    let second_retry = first_retry + jiff::SignedDuration::from_secs(120);
    eventually("the second retry to be slept on", || {
        clock.sleepers().contains(&second_retry)
    })
    .await;
    clock.set(second_retry);
    eventually("the outcome", || log.outcome("s1-a", &w.id).is_some()).await;
    assert_eq!(
        log.outcome("s1-a", &w.id),
        Some(WindowOutcome::Succeeded {
            attempts: 3,
            delayed: false
        })
    );
    assert_eq!(runner.call_count(), 3);
    handle.shutdown().await;
}

#[tokio::test]
async fn the_global_limit_holds_and_a_held_run_starts_delayed() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::gated(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let plans: Vec<Plan> = (0..6).map(|i| daily(&format!("s{i}-a"))).collect();
    let handle = start(&clock, &runner, &log, limits(2, 10), plans.clone());

    // Every planned start is in the first half hour.
    clock.set(ts("2026-11-21T02:30:00Z"));
    eventually("two runs", || runner.running_now() == 2).await;
    settle().await;
    assert_eq!(runner.running_now(), 2, "the global limit is 2");
    assert_eq!(runner.call_count(), 2);

    clock.advance(Duration::from_secs(120));
    runner.gate.send_replace(true);
    eventually("all six windows", || {
        plans
            .iter()
            .all(|p| log.outcome(&p.instance, "2026-11-21").is_some())
    })
    .await;
    assert_eq!(runner.max_running(), 2);
    let calls = runner.calls();
    assert_eq!(calls.len(), 6);
    // The runs held by the limit started well after their planned start.
    assert!(calls[2..].iter().all(|c| c.delayed), "{calls:?}");
    handle.shutdown().await;
}

#[tokio::test]
async fn the_per_storage_limit_holds() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::gated(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    // Storages "x" and "y", three instances each; one backup per storage.
    let plans: Vec<Plan> = ["x-1", "x-2", "x-3", "y-1", "y-2", "y-3"]
        .into_iter()
        .map(daily)
        .collect();
    let handle = start(&clock, &runner, &log, limits(10, 1), plans.clone());

    clock.set(ts("2026-11-21T02:30:00Z"));
    eventually("one run per storage", || runner.running_now() == 2).await;
    settle().await;
    assert_eq!(runner.running_now(), 2);
    assert_eq!(runner.running_on("x"), Some(1));
    assert_eq!(runner.running_on("y"), Some(1));

    runner.gate.send_replace(true);
    eventually("all six windows", || {
        plans
            .iter()
            .all(|p| log.outcome(&p.instance, "2026-11-21").is_some())
    })
    .await;
    assert_eq!(runner.max_running_on("x"), Some(1));
    assert_eq!(runner.max_running_on("y"), Some(1));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_storage_with_its_own_limit_uses_it_and_the_others_the_default() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::gated(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    // "x" may run two at once, "y" the default of one.
    let plans: Vec<Plan> = ["x-1", "x-2", "x-3", "y-1", "y-2", "y-3"]
        .into_iter()
        .map(daily)
        .collect();
    let mut l = limits(10, 1);
    l.storages.insert("x".into(), NonZeroUsize::new(2).unwrap());
    let handle = start(&clock, &runner, &log, l, plans.clone());

    clock.set(ts("2026-11-21T02:30:00Z"));
    eventually("two on x, one on y", || runner.running_now() == 3).await;
    settle().await;
    assert_eq!(runner.running_on("x"), Some(2));
    assert_eq!(runner.running_on("y"), Some(1));

    runner.gate.send_replace(true);
    eventually("all six windows", || {
        plans
            .iter()
            .all(|p| log.outcome(&p.instance, "2026-11-21").is_some())
    })
    .await;
    assert_eq!(runner.max_running_on("x"), Some(2));
    assert_eq!(runner.max_running_on("y"), Some(1));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_backup_held_by_the_limit_until_the_window_closes_is_missed() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::gated(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let handle = start(
        &clock,
        &runner,
        &log,
        limits(1, 1),
        vec![daily("s1-a"), daily("s1-b")],
    );

    clock.set(ts("2026-11-21T02:30:00Z"));
    eventually("one run", || runner.call_count() == 1).await;
    let running = runner.calls()[0].instance.clone();
    let waiting = if running == "s1-a" { "s1-b" } else { "s1-a" };

    clock.set(ts("2026-11-21T03:00:00Z"));
    eventually("the waiting one to be missed", || {
        log.outcome(waiting, "2026-11-21").is_some()
    })
    .await;
    assert!(matches!(
        log.outcome(waiting, "2026-11-21"),
        Some(WindowOutcome::Missed { .. })
    ));
    // The run that started inside the window finishes and counts.
    runner.gate.send_replace(true);
    eventually("the running one", || {
        log.outcome(&running, "2026-11-21").is_some()
    })
    .await;
    assert!(matches!(
        log.outcome(&running, "2026-11-21"),
        Some(WindowOutcome::Succeeded { attempts: 1, .. })
    ));
    assert_eq!(
        runner.call_count(),
        1,
        "nothing started after the window closed"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn replace_plans_takes_effect_without_interrupting_a_running_backup() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::gated(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let a = daily("s1-a");
    let wa = a.window_at_or_after(clock.now()).unwrap();
    let handle = start(&clock, &runner, &log, Limits::default(), vec![a]);

    clock.set(wa.planned_start);
    eventually("a's run", || runner.running_now() == 1).await;

    // a is dropped and b, with a 04:00-05:00 window, added while a runs.
    let b = Plan {
        storage: "s1".into(),
        ..plan("s1-b", "UTC", EVERY_DAY, (4, 0), (5, 0))
    };
    let wb = b.window_at_or_after(clock.now()).unwrap();
    handle.replace_plans(vec![b]).await.unwrap();
    runner.gate.send_replace(true);
    eventually("a's run to finish", || {
        log.outcome("s1-a", &wa.id).is_some()
    })
    .await;
    assert_eq!(
        log.outcome("s1-a", &wa.id),
        Some(WindowOutcome::Succeeded {
            attempts: 1,
            delayed: false
        })
    );

    eventually("the loop to sleep until b", || {
        clock.sleepers() == [wb.planned_start]
    })
    .await;
    clock.set(wb.planned_start);
    eventually("b's run", || runner.call_count() == 2).await;
    assert_eq!(runner.calls()[1].instance, "s1-b");
    assert_eq!(runner.calls()[1].window, "2026-11-21");

    // a's next day comes and goes without a run.
    clock.set(ts("2026-11-22T03:00:00Z"));
    settle().await;
    assert_eq!(runner.call_count(), 2);
    assert_eq!(log.outcome("s1-a", "2026-11-22"), None);

    // Moving b's window to one that is open now runs it today only once:
    // the window id (the date) is already done.
    let moved = Plan {
        storage: "s1".into(),
        ..plan("s1-b", "UTC", EVERY_DAY, (3, 0), (6, 0))
    };
    clock.set(ts("2026-11-21T04:59:00Z"));
    handle.replace_plans(vec![moved]).await.unwrap();
    settle().await;
    assert_eq!(runner.call_count(), 2);
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_a_window_waiting_for_a_retry_to_run_after_a_restart() {
    let p = daily("s1-a");
    let w = p.window_at_or_after(ts(MIDNIGHT)).unwrap();
    let clock = ManualClock::new(w.planned_start);
    let runner = Arc::new(TestRunner::failing(&clock, 1));
    let log = Arc::new(MemoryWindowLog::new());
    let handle = start(&clock, &runner, &log, Limits::default(), vec![p.clone()]);
    let retry = w.planned_start + jiff::SignedDuration::from_secs(60);
    eventually("the retry to be slept on", || {
        clock.sleepers().contains(&retry)
    })
    .await;
    tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
        .await
        .expect("shutdown does not wait for a retry");
    assert_eq!(log.outcome("s1-a", &w.id), None);

    clock.set(retry + jiff::SignedDuration::from_mins(5));
    let healthy = Arc::new(TestRunner::new(&clock));
    let handle = start(&clock, &healthy, &log, Limits::default(), vec![p]);
    eventually("the run after the restart", || {
        log.outcome("s1-a", &w.id).is_some()
    })
    .await;
    assert_eq!(runner.call_count(), 1);
    let calls = healthy.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].attempt, calls[0].delayed), (1, true));
    assert_eq!(
        log.outcome("s1-a", &w.id),
        Some(WindowOutcome::Succeeded {
            attempts: 1,
            delayed: true
        })
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_plans_share_one_sleeping_loop() {
    let clock = ManualClock::new(ts(MIDNIGHT));
    let runner = Arc::new(TestRunner::new(&clock));
    let log = Arc::new(MemoryWindowLog::new());
    let plans: Vec<Plan> = (0..10_000)
        .map(|i| daily(&format!("s{}-{i}", i % 10)))
        .collect();
    let handle = start(&clock, &runner, &log, limits(64, 16), plans.clone());

    eventually("the loop to sleep", || clock.sleepers().len() == 1).await;
    let first = plans
        .iter()
        .map(|p| p.window_at_or_after(clock.now()).unwrap().planned_start)
        .min()
        .unwrap();
    assert_eq!(clock.sleepers(), [first], "one sleeper for all plans");

    clock.set(ts("2026-11-21T02:30:00Z"));
    eventually("every window", || log.record_calls() == 10_000).await;
    assert_eq!(runner.call_count(), 10_000);
    assert!(plans.iter().all(|p| matches!(
        log.outcome(&p.instance, "2026-11-21"),
        Some(WindowOutcome::Succeeded { attempts: 1, .. })
    )));
    handle.shutdown().await;
}
