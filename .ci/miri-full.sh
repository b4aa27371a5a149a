#!/usr/bin/env bash
# Miri on every unit test of oxalloc-core, the ones CI's .ci/miri.sh leaves out for time
# included (see its header for the list and why): the whole set passed on 2026-12-02, the
# left-out ones taking about 13 minutes of real time on two cores (6 for the four heaviest heap
# tests with the purge-delay test, 7.5 for the profile table's test). CI runs .ci/miri.sh; run
# this before changing the core's unsafe code, as .ci/fuzz-long.sh for the fuzzer.
#
#   .ci/miri-full.sh                 # everything
#   MIRI_TESTS="random_replacement" .ci/miri-full.sh    # the tests whose names contain a word
MIRI_SKIP="" exec "$(dirname "$0")/miri.sh"
