#!/usr/bin/env bash
# build-base.sh OUT: the Debian root filesystem the escalation tests (tests/escalation.rs)
# start every fixture from, and its layer tar.
#
#   OUT/rootfs    debootstrap --variant=minbase bookworm, plus sudo and python3-minimal,
#                 and an account app (uid 10001, gid 10001) with a locked password
#   OUT/base.tar  that tree as one layer (numeric owners, security.capability kept)
#
# Needs root (debootstrap, chroot), debootstrap and a Debian mirror: $IMGSCAN_DEBIAN_MIRROR,
# else the first deb.debian.org-style URI of the apt sources, else http://deb.debian.org/debian.
# The tests call it once and cache OUT (keyed by this file's hash); run it by hand to see
# what the fixtures are made of. Takes about a minute and a half.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
out=${1:?usage: build-base.sh OUT}
mirror=${IMGSCAN_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | grep -v security | head -1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
debootstrap --variant=minbase --include=sudo,python3-minimal bookworm "$out.tmp/rootfs" "$mirror" \
  > "$out.tmp/debootstrap.log" 2>&1 || { tail -20 "$out.tmp/debootstrap.log" >&2; exit 1; }
chroot "$out.tmp/rootfs" useradd --uid 10001 --user-group --create-home --shell /bin/sh app
chroot "$out.tmp/rootfs" passwd -l app > /dev/null
# Whatever apt left behind that is not part of the image.
rm -rf "$out.tmp/rootfs/var/cache/apt/archives/"*.deb "$out.tmp/rootfs/var/lib/apt/lists/"*
tar -C "$out.tmp/rootfs" --numeric-owner --xattrs --xattrs-include=security.capability \
  --format=posix -cf "$out.tmp/base.tar" .
rm -rf "$out"
mv "$out.tmp" "$out"
