#!/usr/bin/env bash
# Installs the Debian packages Tidemark's tests and benchmarks use as real peers.
# Safe to run again: packages already present are skipped. Needs root (or sudo).
set -euo pipefail

packages=(
  chromium            # E2E tests drive the console in Debian's Chromium
  openssh-server      # system tests run a real sshd on loopback
  openssh-client
  procps              # pgrep: the sshd harness drops live connections
  openssl             # password hashes for the password-login sshd test
  util-linux          # unshare: that sshd sees its own /etc/shadow
  qemu-utils          # qemu-img, qemu-io: real NBD clients
  libnbd-bin          # nbdcopy, nbdinfo
  nbdkit              # NBD peer for benchmarks
  e2fsprogs
  rsync
  iproute2            # ip netns, veth: a test host in a network namespace
  nftables            # nft: packet loss on that host's link (the kernel may lack netem)
  xxhash              # xxhsum: the independent xxh3-128 reference in signature tests
  xfsprogs            # mkfs.xfs: a reflink-capable filesystem on a loop device for snapshot tests
  mount               # losetup, mount: loop block devices in volume tests
  coreutils           # md5sum, sha256sum: benchmark and reference peers
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
