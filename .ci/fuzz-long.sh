#!/usr/bin/env bash
# Long fuzzing run of the `threads` target (see .ci/fuzz.sh, which CI runs for 30 s):
#
#   .ci/fuzz-long.sh            # one hour
#   .ci/fuzz-long.sh 28800      # eight hours
#
# The corpus accumulates in fuzz/corpus/threads across runs (kept out of git), so each run
# starts where the last one stopped. A crash stops the run and is saved in
# fuzz/artifacts/threads/crash-*; reproduce it with
#   cargo +nightly fuzz run threads fuzz/artifacts/threads/crash-...
# and shrink it with
#   cargo +nightly fuzz tmin threads fuzz/artifacts/threads/crash-...
# Run it on an otherwise idle machine: each input runs 2 to 4 threads.
exec "$(dirname "$0")/fuzz.sh" "${1:-3600}"
