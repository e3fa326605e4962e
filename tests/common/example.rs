//! Running the example programs as child processes: their paths, a guard
//! that kills a server when a test ends, and a server started on port 0
//! with its address read from its first line.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The built example `name`: cargo builds the examples for the tests, next
/// to them; `VERDANT_EXAMPLES_DIR` names another directory of built
/// examples (CI points it at the examples built with `-C panic=abort`).
///
/// # Panics
///
/// When it was not built.
pub fn example(name: &str) -> PathBuf {
    let dir = match std::env::var_os("VERDANT_EXAMPLES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("examples")
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "example {name} was not built at {}",
        path.display()
    );
    path
}

/// Kills the child when dropped, so a failed assertion leaves no server.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server example `name` on 127.0.0.1, port 0, with `extra`
/// arguments; returns it (stdout after the first line and stderr piped)
/// and the address from its `listening on ADDR` line.
pub fn start_server_with(name: &str, extra: &[&str]) -> (Reap, String) {
    start_server_io(name, extra, Stdio::piped())
}

/// [`start_server_with`], with the server's stderr going to `stderr` (a
/// pipe nobody reads would block a server that logs much).
pub fn start_server_io(name: &str, extra: &[&str], stderr: Stdio) -> (Reap, String) {
    use std::io::BufRead;
    let mut server = Reap(
        Command::new(example(name))
            .args(["--addr", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stderr(stderr)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name}: unexpected first line {first:?}"))
        .to_owned();
    (server, addr)
}
