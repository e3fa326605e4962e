//! Shared by the test files that run crash scenarios in a child process:
//! the test re-executes its own binary for exactly one test, with an
//! environment variable naming the child case (greenlet's `run_script`).

use std::process::{Command, Output};

/// The variable that turns a test function into its child scenario.
pub const CHILD_ENV: &str = "VERDANT_TEST_CHILD";

/// The child case this process must run, if it is a child.
pub fn child_case() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs this test binary for exactly `test`, as child case `case`, with
/// extra environment `env`.
pub fn run_child(test: &str, case: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        // `--include-ignored`: an ignored test, when run by hand, must still
        // find its child scenario.
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, case)
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .output()
        .expect("spawn child test process")
}
