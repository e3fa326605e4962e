//! Looking inside a hub: `Hub::run_info` (each greenlet's state and what it
//! waits for, spawn site, age, stack high-water mark), the stuck greenlets
//! a `LoopExit` names, and the switch-trace hook.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::io::Direction;
use verdant::net::{TcpListener, TcpStream};
use verdant::sync::{channel, Condition, Event, JoinableQueue, Lock, Queue, WaitError};
use verdant::{
    joinall, sleep, spawn, spawn_blocking, spawn_later, yield_now, Builder, Greenlet, GreenletInfo,
    Group, Hub, JoinAllError, JoinErrorKind, RunState, TraceKind, Waiting,
};

/// What `run_info` says of the greenlet with id `id`, if it is live.
fn info(id: u64) -> Option<GreenletInfo> {
    Hub::current()
        .run_info()
        .greenlets()
        .iter()
        .find(|g| g.id == id)
        .cloned()
}

/// The state of the live greenlet `id`.
fn state(id: u64) -> RunState {
    info(id).expect("the greenlet is live").state
}

#[test]
fn a_spawned_greenlet_is_ready_then_running_then_gone() {
    let b = Builder::new().name("worker");
    let f = || state(Greenlet::current().id());
    let line = line!() + 1;
    let h = b.spawn(f).unwrap();
    let g = info(h.id()).unwrap();
    assert_eq!(g.state, RunState::Ready);
    assert_eq!(g.name, "worker");
    assert_eq!(g.spawned_at.file(), file!());
    assert_eq!(g.spawned_at.line(), line);
    assert_eq!(g.stack_size, Hub::current().stack_size());
    assert_eq!(g.stack_used, Some(0), "never ran");
    let id = h.id();
    assert_eq!(h.join().unwrap(), RunState::Running);
    assert!(info(id).is_none(), "a dead greenlet is not listed");
}

#[test]
fn the_spawn_site_is_the_callers_for_every_spawning_api() {
    let hub = Hub::current();
    let mut lines = Vec::new();
    let mut ids = Vec::new();
    lines.push(line!() + 1);
    ids.push(spawn(|| ()).id());
    lines.push(line!() + 1);
    ids.push(spawn_later(Duration::from_secs(60), || ()).id());
    let group = Group::new();
    lines.push(line!() + 1);
    ids.push(group.spawn(|| ()).id());
    let pool = verdant::Pool::new(4);
    lines.push(line!() + 1);
    ids.push(pool.spawn(|| ()).unwrap().id());
    lines.push(line!() + 1);
    let raw = Greenlet::new(|()| ());
    ids.push(raw.id());
    let listed = hub.run_info();
    for (id, line) in ids.iter().zip(&lines) {
        let g = listed.greenlets().iter().find(|g| g.id == *id).unwrap();
        assert_eq!(
            (g.spawned_at.file(), g.spawned_at.line()),
            (file!(), *line),
            "{g}"
        );
    }
    verdant::scope(|s| {
        let line = line!() + 1;
        let h = s.spawn(|| ());
        assert_eq!(info(h.id()).unwrap().spawned_at.line(), line);
    })
    .unwrap();
    group.kill();
    pool.kill();
}

#[test]
fn a_remote_post_is_spawned_at_the_posting_line() {
    let remote = Hub::current().remote();
    let (tx, rx) = std::sync::mpsc::channel();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = move || tx.send(info(Greenlet::current().id()).unwrap()).unwrap();
        line_tx.send(line!() + 1).unwrap();
        remote.post(f).unwrap();
    })
    .join()
    .unwrap();
    sleep(Duration::from_millis(20));
    let g = rx.try_recv().expect("the post ran");
    let line = line_rx.recv().unwrap();
    assert_eq!((g.spawned_at.file(), g.spawned_at.line()), (file!(), line));
}

#[test]
fn run_info_names_each_kind_of_wait() {
    let far = Instant::now() + Duration::from_secs(60);
    // Sleep, with its deadline.
    let sleeper = spawn(|| sleep(Duration::from_secs(60)));
    // A spawn_later start, with its deadline.
    let later = spawn_later(Duration::from_secs(60), || ());
    // A join.
    let joined = spawn(|| sleep(Duration::from_secs(60)));
    let j = joined.greenlet().clone();
    let joiner = spawn(move || {
        let _ = verdant::iwait([&j]).next();
    });
    let target = spawn(|| sleep(Duration::from_secs(60)));
    let t = target.greenlet().clone();
    let join_one = spawn(move || {
        let _ = joinall([&t]);
    });
    let t2 = target.greenlet().clone();
    let join_by_id = spawn(move || {
        let _ = verdant::wait_any([&t2], None);
    });
    // An event, a lock, a condition.
    let event = Rc::new(Event::new());
    let e = event.clone();
    let on_event = spawn(move || e.wait());
    let lock = Rc::new(Lock::new(0));
    let held = lock.lock().unwrap();
    let l = lock.clone();
    let on_lock = spawn(move || drop(l.lock()));
    let cond = Rc::new(Condition::new());
    let cl = Rc::new(Lock::new(()));
    let (c, cl2) = (cond.clone(), cl.clone());
    let on_cond = spawn(move || {
        let g = cl2.lock().unwrap();
        let _ = c.wait(g);
    });
    // Queue get, put and join; a channel select.
    let empty: Rc<Queue<u8>> = Rc::new(Queue::new());
    let q = empty.clone();
    let on_get = spawn(move || q.get());
    let full: Rc<Queue<u8>> = Rc::new(Queue::bounded(1));
    full.put(1).unwrap();
    let q = full.clone();
    let on_put = spawn(move || q.put(2));
    let jq: Rc<JoinableQueue<u8>> = Rc::new(JoinableQueue::new());
    jq.put(1).unwrap();
    let q = jq.clone();
    let on_qjoin = spawn(move || q.join());
    let (_tx, rx) = channel::unbounded::<u8>();
    let on_select = spawn(move || {
        let mut sel = channel::Select::new();
        sel.recv(&rx);
        sel.select()
    });
    // A group's join, a blocking job.
    let group = Rc::new(Group::new());
    group.spawn(|| sleep(Duration::from_secs(60)));
    let gr = group.clone();
    let on_group = spawn(move || gr.join());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let on_blocking = spawn(move || spawn_blocking(move || go_rx.recv()).join());
    // Socket reads and writes, on two connections: nobody writes to the
    // first, nobody reads the second.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (quiet, _) = (TcpStream::connect(addr).unwrap(), ());
    let (reader, _) = listener.accept().unwrap();
    let writer = TcpStream::connect(addr).unwrap();
    let (deaf, _) = listener.accept().unwrap();
    let read_fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
    let write_fd = std::os::fd::AsRawFd::as_raw_fd(&writer);
    let on_read = spawn(move || {
        let mut b = [0u8; 1];
        std::io::Read::read(&mut &reader, &mut b)
    });
    let on_write = spawn(move || {
        // The send buffer fills, then it waits.
        let chunk = vec![0u8; 1 << 16];
        loop {
            if (&writer).write_all(&chunk).is_err() {
                return;
            }
        }
    });

    sleep(Duration::from_millis(50)); // everyone reaches its wait
    let expect = [
        (sleeper.id(), Waiting::Sleep),
        (later.id(), Waiting::Start),
        (joiner.id(), Waiting::Several),
        (join_one.id(), Waiting::Several),
        (join_by_id.id(), Waiting::Several),
        (on_event.id(), Waiting::Event),
        (on_lock.id(), Waiting::Lock),
        (on_cond.id(), Waiting::Condition),
        (on_get.id(), Waiting::Get),
        (on_put.id(), Waiting::Put),
        (on_qjoin.id(), Waiting::QueueJoin),
        (on_select.id(), Waiting::Select),
        (on_group.id(), Waiting::Group),
        (on_blocking.id(), Waiting::Blocking),
        (
            on_read.id(),
            Waiting::Io {
                fd: read_fd,
                direction: Direction::Read,
            },
        ),
        (
            on_write.id(),
            Waiting::Io {
                fd: write_fd,
                direction: Direction::Write,
            },
        ),
    ];
    let listed = Hub::current().run_info();
    let text = listed.to_string();
    for (id, what) in expect {
        let g = listed
            .greenlets()
            .iter()
            .find(|g| g.id == id)
            .unwrap_or_else(|| panic!("#{id} ({what:?}) is not live:\n{listed}"));
        assert_eq!(g.state, RunState::Waiting(what), "{g}");
        assert!(text.contains(&format!("#{id} ")), "{text}");
    }
    for id in [sleeper.id(), later.id()] {
        let g = listed.greenlets().iter().find(|g| g.id == id).unwrap();
        let d = g.deadline.expect("a timed wait shows its deadline");
        assert!(d > far - Duration::from_secs(5) && d <= far + Duration::from_secs(1));
    }
    assert!(text.contains("waiting for a sleep (times out in"), "{text}");
    assert!(
        text.contains(&format!("fd {read_fd} to be readable")),
        "{text}"
    );

    // Woken, not yet run: ready.
    event.set();
    assert_eq!(state(on_event.id()), RunState::Ready);
    drop(held);
    go_tx.send(()).unwrap();
    for h in [&sleeper, &joined, &target] {
        h.kill();
    }
    group.kill();
    full.get().unwrap();
    let _ = empty.put(0);
    jq.get().unwrap();
    jq.task_done().unwrap();
    cond.notify_all();
    later.kill();
    on_select.kill();
    on_read.kill();
    on_write.kill();
    sleep(Duration::from_millis(20));
    drop((quiet, deaf));
}

#[test]
fn a_join_by_handle_shows_whom_it_waits_for() {
    let target = spawn(|| sleep(Duration::from_secs(60)));
    let (id, g) = (target.id(), target.greenlet().clone());
    let joiner = spawn(move || target.join());
    sleep(Duration::from_millis(5));
    assert_eq!(state(joiner.id()), RunState::Waiting(Waiting::Join { id }));
    verdant::killall([&g]);
    assert!(joiner.join().unwrap().unwrap_err().is_killed());
}

#[test]
fn raw_greenlets_show_not_started_and_switched_out() {
    let g = Greenlet::new(|()| {
        Greenlet::current().parent().unwrap().switch(());
    });
    assert_eq!(state(g.id()), RunState::NotStarted);
    g.switch(());
    assert_eq!(state(g.id()), RunState::SwitchedOut);
    let t = spawn(yield_now);
    yield_now();
    // Yielding: woken at once, so ready.
    assert!(matches!(
        info(t.id()).map(|i| i.state),
        Some(RunState::Ready) | None
    ));
    t.join().unwrap();
}

#[test]
fn the_stack_high_water_mark_shows_deep_use() {
    #[inline(never)]
    fn deep(n: usize) -> u8 {
        let mut buf = [0u8; 96 * 1024];
        std::hint::black_box(&mut buf)[n] = 1;
        std::hint::black_box(&buf)[n]
    }
    let shallow = spawn(|| sleep(Duration::from_secs(60)));
    let deep_one = spawn(|| {
        deep(7);
        sleep(Duration::from_secs(60))
    });
    sleep(Duration::from_millis(5));
    let s = info(shallow.id()).unwrap().stack_used.unwrap();
    let d = info(deep_one.id()).unwrap().stack_used.unwrap();
    assert!(s > 0 && s < 32 * 1024, "shallow used {s}");
    assert!((96 * 1024..200 * 1024).contains(&d), "deep used {d}");
    shallow.kill();
    deep_one.kill();
}

/// STK-7 at the plan's accuracy: a recursion whose depth is known (from
/// the addresses of its own locals) reports a high-water mark within 4 KiB
/// of it, at 16, 64 and 192 KiB deep. Fresh stack pages read as zero and a
/// reused stack is scrubbed to zero, so zero is the fill pattern; every
/// frame holds a return address, which never is.
#[test]
fn the_stack_high_water_mark_is_within_4_kib_of_a_known_depth() {
    #[inline(never)]
    fn down(until: usize, top: usize) -> usize {
        let mut frame = [1u8; 256];
        let here = std::hint::black_box(&mut frame).as_ptr() as usize;
        let deepest = if top - here >= until {
            here
        } else {
            down(until, top)
        };
        std::hint::black_box(&frame);
        deepest
    }
    for kib in [16usize, 64, 192] {
        let known = Rc::new(std::cell::Cell::new(0usize));
        let k = known.clone();
        let h = spawn(move || {
            let anchor = 0u8;
            let top = std::hint::black_box(&anchor) as *const u8 as usize;
            k.set(top - down(kib * 1024, top));
            sleep(Duration::from_secs(60));
        });
        sleep(Duration::from_millis(5));
        let known = known.get();
        assert!(known >= kib * 1024, "the recursion stopped at {known}");
        let used = info(h.id()).unwrap().stack_used.unwrap();
        assert!(
            used >= known && used - known <= 4096,
            "{kib} KiB: reported {used}, known {known} (off by {})",
            used as isize - known as isize
        );
        eprintln!("stk7: {kib} KiB deep, reported {used} for {known} known");
        h.kill();
    }
}

#[test]
fn the_age_grows() {
    let h = spawn(|| sleep(Duration::from_secs(60)));
    let a = info(h.id()).unwrap().age;
    sleep(Duration::from_millis(30));
    let b = info(h.id()).unwrap().age;
    assert!(b >= a + Duration::from_millis(20), "{a:?} then {b:?}");
    h.kill();
}

#[test]
fn loop_exit_names_the_stuck_greenlets() {
    let never = Rc::new(Event::new());
    let q: Rc<Queue<u8>> = Rc::new(Queue::new());
    let n = never.clone();
    let a = Builder::new()
        .name("waits-event")
        .spawn(move || n.wait())
        .unwrap();
    let q2 = q.clone();
    let b = Builder::new()
        .name("waits-queue")
        .spawn(move || q2.get())
        .unwrap();
    yield_now();
    // main waits on an event nothing can set: LoopExit, naming both.
    let other = Event::new();
    let err = other.wait().unwrap_err();
    let WaitError::LoopExit(stuck) = &err else {
        panic!("{err:?}")
    };
    let names: Vec<(&str, RunState)> = stuck
        .greenlets()
        .iter()
        .map(|g| (g.name.as_str(), g.state))
        .collect();
    assert_eq!(
        names,
        [
            ("waits-event", RunState::Waiting(Waiting::Event)),
            ("waits-queue", RunState::Waiting(Waiting::Get)),
        ]
    );
    let text = err.to_string();
    assert!(text.contains("2 greenlets can never be woken"), "{text}");
    assert!(
        text.contains("'waits-event' waiting for an event"),
        "{text}"
    );
    assert!(text.contains(file!()), "{text}");

    // A join reports them too (the joined one among them).
    let je = a.join().unwrap_err();
    assert_eq!(je.kind(), JoinErrorKind::LoopExit);
    let ids: Vec<u64> = je
        .stuck()
        .unwrap()
        .greenlets()
        .iter()
        .map(|g| g.id)
        .collect();
    assert!(ids.contains(&b.id()), "{je}");
    assert!(je.to_string().contains("'waits-queue'"), "{je}");

    // And joinall.
    match joinall([&b]) {
        Err(JoinAllError::LoopExit(s)) => {
            assert!(s.greenlets().iter().any(|g| g.id == b.id()), "{s}")
        }
        other => panic!("{other:?}"),
    }
    never.set();
    q.put(1).unwrap();
    sleep(Duration::ZERO);
}

#[test]
fn loop_exit_with_nothing_else_waiting_says_so() {
    let e = Event::new();
    let err = e.wait().unwrap_err();
    assert!(matches!(&err, WaitError::LoopExit(s) if s.greenlets().is_empty()));
    assert!(
        err.to_string().contains("no other greenlet is waiting"),
        "{err}"
    );
}

#[test]
fn a_long_stuck_list_is_cut_in_display() {
    let never = Rc::new(Event::new());
    let hs: Vec<_> = (0..40)
        .map(|_| {
            let n = never.clone();
            spawn(move || n.wait())
        })
        .collect();
    yield_now();
    let err = Event::new().wait().unwrap_err();
    let WaitError::LoopExit(s) = &err else {
        panic!()
    };
    assert_eq!(s.greenlets().len(), 40);
    assert!(err.to_string().contains("… and 24 more"), "{err}");
    never.set();
    joinall(&hs).unwrap();
}

#[test]
fn the_trace_hook_sees_switches_and_throws() {
    type Seen = Rc<RefCell<Vec<(u64, u64, TraceKind)>>>;
    let seen: Seen = Rc::default();
    let s = seen.clone();
    let hub = Hub::current();
    assert!(hub
        .set_trace(Some(Box::new(move |e| {
            s.borrow_mut().push((e.origin.id(), e.target.id(), e.kind));
        })))
        .is_none());
    let main = Greenlet::current().id();
    let a = spawn(|| sleep(Duration::from_secs(60)));
    yield_now(); // main -> a (a parks) -> main
    a.kill(); // a throw into a
    let a_id = a.id();
    let _ = a.join();
    let old = hub.set_trace(None);
    assert!(
        old.is_some(),
        "set_trace gives back the function it replaces"
    );
    let seen = seen.borrow().clone();
    assert_eq!(seen[0], (main, a_id, TraceKind::Switch), "{seen:?}");
    assert_eq!(seen[1], (a_id, main, TraceKind::Switch), "{seen:?}");
    assert!(
        seen.contains(&(main, a_id, TraceKind::Throw)),
        "the kill is a throw: {seen:?}"
    );
    // Removed: nothing more is seen.
    let n = seen.len();
    spawn(|| ()).join().unwrap();
    assert_eq!(n, seen.len());
}

#[test]
fn a_panicking_or_switching_trace_function_does_no_harm() {
    let hub = Hub::current();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    hub.set_trace(Some(Box::new(move |_| {
        *c.borrow_mut() += 1;
        sleep(Duration::from_millis(1)); // refused: returns at once
        yield_now();
    })));
    assert_eq!(spawn(|| 5).join().unwrap(), 5);
    assert!(*calls.borrow() >= 2);
    hub.set_trace(Some(Box::new(|_| panic!("trace bug"))));
    assert_eq!(spawn(|| 6).join().unwrap(), 6, "the switch goes on");
    assert!(
        hub.set_trace(None).is_none(),
        "the panicking function was removed"
    );
}
