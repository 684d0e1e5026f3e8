# Sourced by scripts/run and scripts/package: apt-get on this machine, as
# root or through sudo, with one apt-get update per run at most, and only
# when something is to be installed.
# shellcheck shell=bash
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
apt_updated=0
apt_host() {
	[ "$apt_updated" = 1 ] || { "${sudo[@]}" apt-get update -q; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get "$@"
}
# install_missing PACKAGE...: install those of them that are not installed.
install_missing() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	echo "== installing: ${missing[*]}"
	apt_host install -y -q --no-install-recommends "${missing[@]}"
}
