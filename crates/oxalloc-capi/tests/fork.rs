//! fork() must never hang: from a signal handler that interrupted the same thread inside
//! malloc, free or realloc (`c/fork_signal.c`), and while other threads run `fflush(NULL)` and
//! `getline`, which allocates under its stream's lock (`c/fork_stdio.c`). Each program forks
//! hundreds of times, and is run many times; each has a time limit of its own (60 s), after
//! which it reports a hang and exits with status 3. Both hung on every run before the atfork
//! handlers took stdio's list lock first and stopped waiting for locks the forking thread holds.

mod common;
use common::*;

fn run_many(program: &str, runs: usize, forks: &str) {
    let bin = compile(program, false);
    for run in 0..runs {
        let out = run_preloaded(&bin, &[forks], &[]);
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
