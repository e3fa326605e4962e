//! The edges of `monkey::patch_all()` that a review found: large pipe
//! writes, `poll` for urgent data only, descriptor numbers closed behind
//! the patch's back, forked children, child waits, a killed greenlet that
//! keeps calling `sleep(0)`, Unix datagrams to a full receiver, and
//! `MSG_PEEK | MSG_WAITALL`. All but the datagram test hung or gave a
//! wrong answer before their fixes; the datagram one pins the behaviour
//! (the receiver's draining frees the sender's buffer space, which the
//! patched send waits for, with a backing-off look as well).

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use verdant::{sleep, spawn, with_timeout};

fn patched() {
    verdant::monkey::patch_all();
    spawn(|| ()).join().unwrap();
}

/// A pipe: (read end, write end), both blocking.
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just made and are owned here.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn a_pipe_write_larger_than_the_pipe_waits_for_its_reader_on_the_same_hub() {
    patched();
    let (mut r, mut w) = pipe();
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let expect = data.clone();
    let writer = spawn(move || w.write_all(&data).unwrap());
    let reader = spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    });
    let got = with_timeout(Duration::from_secs(10), || reader.join().unwrap()).expect("hung");
    writer.join().unwrap();
    assert!(got == expect, "1 MiB through a 64 KiB pipe, intact");
}

#[test]
fn poll_for_urgent_data_only_does_not_hide_ordinary_data() {
    patched();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let got = spawn(move || {
        // A wait registers the fd with the hub.
        let mut first = [0u8; 1];
        (&a).read_exact(&mut first).unwrap();
        // Data queued, but POLLPRI asks for urgent data only: a timeout.
        let mut p = libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 30) }, 0);
        // The queued data is still found at once.
        let mut rest = [0u8; 4];
        (&a).read_exact(&mut rest).unwrap();
        (first, rest)
    });
    sleep(Duration::from_millis(20));
    b.write_all(b"xdata").unwrap();
    let r = with_timeout(Duration::from_secs(5), || got.join().unwrap()).expect("hung");
    assert_eq!(r, (*b"x", *b"data"));
}

#[test]
fn a_number_closed_by_libc_itself_and_reused_is_watched_afresh() {
    patched();
    // One try: a watched socket closed by libc (not the patched close),
    // then a new socket; true when the new one got the same number.
    fn attempt() -> (bool, u8) {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let n = a.as_raw_fd();
        // Register `a` with the hub by waiting on it once.
        let w = spawn(move || {
            sleep(Duration::from_millis(10));
            b.write_all(b"1").unwrap();
            b
        });
        (&a).read_exact(&mut [0u8; 1]).unwrap();
        drop(w.join().unwrap());
        // libc closes it (fclose), not the patched close.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(a);
        // SAFETY: fdopen takes ownership of fd; fclose closes it.
        unsafe { libc::fclose(libc::fdopen(fd, c"r".as_ptr())) };
        // The next socket takes the same number, unless another test's
        // thread opened a descriptor in between.
        let (c, mut d) = std::os::unix::net::UnixStream::pair().unwrap();
        let reused = c.as_raw_fd() == n;
        let w = spawn(move || {
            sleep(Duration::from_millis(20));
            d.write_all(b"2").unwrap();
            d
        });
        let mut buf = [0u8; 1];
        (&c).read_exact(&mut buf).unwrap();
        drop(w.join().unwrap());
        (reused, buf[0])
    }
    // The tests of this file run on parallel threads, which open
    // descriptors too: try until the number is reused (each try must read
    // its byte either way).
    let r = spawn(|| {
        let mut reused_once = false;
        for _ in 0..50 {
            let (reused, byte) = attempt();
            assert_eq!(byte, b'2');
            if reused {
                reused_once = true;
                break;
            }
        }
        reused_once
    });
    let reused = with_timeout(Duration::from_secs(20), || r.join().unwrap()).expect("hung");
    assert!(reused, "the number was never reused in 50 tries");
}

#[test]
fn a_forked_child_closing_a_watched_fd_leaves_the_parents_wait_alone() {
    patched();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let reader = spawn(move || {
        let mut buf = [0u8; 2];
        (&a).read_exact(&mut buf).unwrap();
        buf
    });
    sleep(Duration::from_millis(10)); // the reader waits: `a` is registered
                                      // SAFETY: the child only closes a descriptor and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: in the child: close (patched: must not touch the
        // parent's epoll registrations) and exit without unwinding.
        unsafe {
            libc::close(fd);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    b.write_all(b"ok").unwrap();
    let got = with_timeout(Duration::from_secs(5), || reader.join().unwrap())
        .expect("the parent's wait was lost");
    assert_eq!(&got, b"ok");
}

#[test]
fn child_waits_report_as_libc_does() {
    patched();
    let r = spawn(|| {
        // waitid for any child: the child's pid, once.
        #[allow(clippy::zombie_processes)] // reaped by the waitid below
        let child = std::process::Command::new("true").spawn().unwrap();
        // SAFETY: a zeroed siginfo_t is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-parameter.
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED) };
        // SAFETY: filled by waitid.
        let pid = unsafe { info.si_pid() };
        // waitpid on a process that is not our child: ECHILD at once.
        let t = Instant::now();
        // SAFETY: plain call.
        let e = unsafe { libc::waitpid(1, std::ptr::null_mut(), 0) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        (r, pid, child.id() as i32, e, errno, t.elapsed())
    });
    let (r, pid, child, e, errno, took) =
        with_timeout(Duration::from_secs(5), || r.join().unwrap()).expect("hung");
    assert_eq!((r, pid), (0, child));
    assert_eq!((e, errno), (-1, Some(libc::ECHILD)));
    assert!(took < Duration::from_millis(500));
}

#[test]
fn a_killed_greenlet_spinning_on_sleep_zero_does_not_freeze_the_hub() {
    patched();
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let spinner = spawn(move || {
        while !s.get() {
            // SAFETY: plain libc call.
            unsafe { libc::usleep(0) };
        }
    });
    sleep(Duration::from_millis(5));
    spinner.kill_nowait();
    let t = Instant::now();
    sleep(Duration::from_millis(20)); // runs only if the spinner yields
    assert!(t.elapsed() < Duration::from_secs(2));
    stop.set(true);
    let _ = spinner.join();
}

#[test]
fn a_unix_datagram_to_a_full_receiver_waits_until_it_drains() {
    patched();
    let dir = std::env::temp_dir().join(format!("verdant-dgram-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    let rx_path = dir.join("rx");
    let _ = std::fs::remove_file(&rx_path);
    let rx = std::os::unix::net::UnixDatagram::bind(&rx_path).unwrap();
    let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
    // Fill the receiver's queue.
    let mut sent = 0;
    loop {
        // SAFETY: a valid buffer; MSG_DONTWAIT: EAGAIN once full.
        let r = unsafe {
            let addr = sockaddr_un(&rx_path);
            libc::sendto(
                tx.as_raw_fd(),
                b"fill".as_ptr().cast(),
                4,
                libc::MSG_DONTWAIT,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r < 0 {
            break;
        }
        sent += 1;
    }
    assert!(sent > 0);
    let p = rx_path.clone();
    let sender = spawn(move || tx.send_to(b"last", &p).unwrap());
    let drainer = spawn(move || {
        sleep(Duration::from_millis(30));
        let mut buf = [0u8; 8];
        let mut n = 0;
        loop {
            let len = rx.recv(&mut buf).unwrap();
            n += 1;
            if &buf[..len] == b"last" {
                return n;
            }
        }
    });
    let n = with_timeout(Duration::from_secs(5), || drainer.join().unwrap())
        .expect("the send never completed");
    assert_eq!(sender.join().unwrap(), 4);
    assert_eq!(n, sent + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn sockaddr_un(path: &std::path::Path) -> libc::sockaddr_un {
    // SAFETY: a zeroed sockaddr_un is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in a
        .sun_path
        .iter_mut()
        .zip(path.as_os_str().as_encoded_bytes())
    {
        *d = *s as libc::c_char;
    }
    a
}

#[test]
fn peek_waitall_waits_for_the_whole_length_and_leaves_it_queued() {
    patched();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let peeker = spawn(move || {
        let mut buf = [0u8; 5];
        // SAFETY: a valid buffer of the length passed.
        let n = unsafe {
            libc::recv(
                a.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                5,
                libc::MSG_PEEK | libc::MSG_WAITALL,
            )
        };
        let mut again = [0u8; 5];
        (&a).read_exact(&mut again).unwrap();
        (n, buf, again)
    });
    b.write_all(b"hel").unwrap();
    sleep(Duration::from_millis(30));
    b.write_all(b"lo").unwrap();
    let (n, peeked, read) =
        with_timeout(Duration::from_secs(5), || peeker.join().unwrap()).expect("hung");
    assert_eq!((n, &peeked, &read), (5, b"hello", b"hello"));
}
