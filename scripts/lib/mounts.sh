# Sourced by the scripts that build in or boot from a root file system on
# this machine (scripts/package, tests/vm/build-*-root,
# tests/vm/package-install-test): taking down what they mounted there.
# shellcheck shell=bash
[ -n "${sudo+set}" ] || sudo=()

# The mount points at DIR or below it, the deepest first.
mounts_under() {
	awk -v d="${1%/}" '$2 == d || index($2, d "/") == 1 { print $2 }' \
		/proc/self/mounts | sort -r
}

# unmount_under DIR: unmount everything mounted at DIR or below it, the
# deepest first.  A mount still in use (a process left running in a
# chroot, a shell whose directory is inside) is detached lazily instead,
# so that nothing is mounted there any more and DIR can be removed
# without reaching into a mounted file system.  Status 1 if something
# could not be unmounted even so.
unmount_under() {
	local mount
	mounts_under "$1" | while IFS= read -r mount; do
		"${sudo[@]}" umount "$mount" 2>/dev/null ||
			"${sudo[@]}" umount -l "$mount" || true
	done
	[ -z "$(mounts_under "$1")" ]
}

# remove_tree DIR: unmount_under DIR, then remove it (never crossing into
# another file system, should a mount have appeared meanwhile).
remove_tree() {
	unmount_under "$1" && "${sudo[@]}" rm -rf --one-file-system "$1"
}
