# Sourced by tests/vm/package-install-test and, in the guest, by
# tests/package/guest-install-test, and by the unit tests under tests/unit:
# one TAP line per check, numbered on from $n, with $failed counting the
# failures.
# shellcheck shell=bash
n=${n:-0} failed=${failed:-0}
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
# check DESCRIPTION COMMAND...: one TAP line for the command's status.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# fails COMMAND...: succeeds when the command fails (check "..." fails ...).
# shellcheck disable=SC2317 # called through check
fails() { ! "$@"; }
