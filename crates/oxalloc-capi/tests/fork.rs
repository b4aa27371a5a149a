//! fork() must never hang: from a signal handler that interrupted the same thread inside
//! malloc, free or realloc (`c/fork_signal.c`), and while other threads run `fflush(NULL)` and
//! `getline`, which allocates under its stream's lock (`c/fork_stdio.c`). Each program forks
//! hundreds of times, and is run many times; each has a time limit of its own (60 s), after
//! which it reports a hang and exits with status 3. Both hung on every run before the atfork
//! handlers took stdio's list lock first and stopped waiting for locks the forking thread holds.

mod common;
use common::*;

fn run_many(program: &str, runs: usize, forks: &str) {
    run_many_with(program, runs, forks, &[]);
}

fn run_many_with(program: &str, runs: usize, forks: &str, env: &[(&str, &str)]) {
    let bin = compile(program, false);
    for run in 0..runs {
        let out = run_preloaded(&bin, &[forks], env);
        assert_passed(&format!("{program} run {run}"), &out);
    }
}

#[test]
fn fork_from_a_signal_handler_inside_malloc() {
    run_many("fork_signal.c", 20, "1000");
}

#[test]
fn fork_while_stdio_allocates_under_its_locks() {
    run_many("fork_stdio.c", 10, "300");
}

/// The same with the background purge thread running (with a 1 ms delay, so it claims and
/// purges all the time): the atfork handlers wait for its purge lock, which it never holds while
/// it waits for another lock.
#[test]
fn fork_from_a_signal_handler_with_the_purge_thread() {
    run_many_with(
        "fork_signal.c",
        5,
        "1000",
        &[("OXALLOC_PURGE_THREAD", "1"), ("OXALLOC_PURGE_DELAY", "1")],
    );
}
