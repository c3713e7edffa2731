#!/usr/bin/env bash
# oracle.sh: the independent answer key for imgscan's filesystem checks.
#
#   testdata/oracle.sh IMAGE_OCI_LAYOUT:TAG        e.g. testdata/oracle.sh testdata/sample/oci:sample
#
# Why: imgscan never extracts anything; it merges layers virtually (whiteouts, opaque
# dirs, hardlinks, PAX xattrs). To check that merge against something we did not
# write, this script lets umoci apply the layers for real (`umoci unpack`, as root so
# owners, modes and security.capability xattrs are restored), then asks find(1) and
# getcap(8) what is on disk. The tests compare these lines with the scanner's
# findings, so the format below is a contract: change it only together with the tests
# and testdata/*.oracle.
#
# Output: one line per item, fields separated by one space, sorted with LC_ALL=C sort.
# PATH is absolute inside the image ("/usr/bin/x"), relative to the image root; the
# root directory itself is never reported (its attributes come from umoci, not from
# a layer). Only the bundle's rootfs/ is examined, never umoci's own bundle files.
#
#   setuid PATH MODE UID GID   regular file with the set-user-ID bit (04000)
#   setgid PATH MODE UID GID   regular file with the set-group-ID bit (02000);
#                              setgid directories are NOT reported
#                              (a file with both bits gives both lines)
#     MODE = mode & 07777 in octal, always 4 digits here (e.g. 4755, 2755, 6755);
#     UID, GID = numeric owner and group as unpacked.
#   cap PATH CAPS              regular file with a security.capability xattr;
#                              CAPS = the rest of the line, exactly as getcap prints
#                              it (libcap 2.66: "cap_setuid,cap_sys_admin=ep"; may hold
#                              spaces for mixed flag sets, or "[rootid=N]" for v3)
#   world-writable PATH TYPE   owned by uid 0, others-write bit (0002) set;
#                              TYPE = file | dir; symlinks, character/block devices,
#                              fifos and sockets are never reported, nor are
#                              directories with the sticky bit (01000, e.g. /tmp 1777)
#   daemon PATH                regular file or symlink (any target, dangling too)
#                              whose basename is a remote-shell daemon: sshd dropbear
#                              dropbearmulti tinysshd telnetd in.telnetd utelnetd
#                              rlogind in.rlogind rshd in.rshd rexecd in.rexecd
#
# No line at all means no item. Paths containing whitespace or control characters
# make the oracle fail (exit 2) rather than print an ambiguous line.
#
# As non-root, umoci unpacks with --rootless: every owner becomes the caller and
# capability xattrs cannot be restored, so UID/GID fields, cap lines and
# world-writable lines (which need uid 0) are then NOT trustworthy; a warning says so
# on stderr. Compare against it only when running as root.
#
# Exit status: 0 printed the answer (possibly nothing); 2 usage or tool error.
set -euo pipefail
export LC_ALL=C
# getcap lives in /usr/sbin, not on a normal user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

prog=oracle.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 2; }

if [ $# -ne 1 ] || [ -z "$1" ]; then die "usage: $prog IMAGE_OCI_LAYOUT:TAG"; fi
case $1 in -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
image=$1
layout=${image%:*}
[ "$layout" != "$image" ] || die "no tag in '$image' (expected IMAGE_OCI_LAYOUT:TAG)"
[ -f "$layout/oci-layout" ] || die "'$layout' is not an OCI image layout (no oci-layout file)"

for tool in umoci getcap find sort; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/install-test-deps"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/imgscan-oracle.XXXXXX")
cleanup() {
  # A rootless unpack can leave directories without write permission for us.
  [ "$EUID" -eq 0 ] || chmod -R u+rwX "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

unpack_opts=()
if [ "$EUID" -ne 0 ]; then
  unpack_opts=(--rootless)
  echo "$prog: warning: not root, unpacking --rootless: UID/GID, cap and world-writable lines are not trustworthy" >&2
fi
umoci --log error unpack "${unpack_opts[@]}" --image "$image" "$tmp/bundle" >/dev/null \
  || die "umoci unpack --image $image failed"

cd "$tmp/bundle/rootfs"

if [ -n "$(find . -mindepth 1 -name '*[[:space:][:cntrl:]]*' -print -quit)" ]; then
  die "a path in $image contains whitespace or control characters; the line format cannot carry it"
fi

daemons=(sshd dropbear dropbearmulti tinysshd telnetd in.telnetd utelnetd
  rlogind in.rlogind rshd in.rshd rexecd in.rexecd)
name_expr=()
for d in "${daemons[@]}"; do
  name_expr+=(${name_expr[0]+-o} -name "$d")
done

{
  find . -mindepth 1 -type f -perm -4000 -printf 'setuid /%P %m %U %G\n'
  find . -mindepth 1 -type f -perm -2000 -printf 'setgid /%P %m %U %G\n'
  # getcap prints "./PATH CAPS" for files that carry capabilities and nothing for others.
  find . -mindepth 1 -type f -exec getcap {} + | sed 's|^\./\([^ ]*\) |cap /\1 |'
  find . -mindepth 1 -uid 0 -perm -0002 -type f -printf 'world-writable /%P file\n'
  find . -mindepth 1 -uid 0 -perm -0002 -type d ! -perm -1000 -printf 'world-writable /%P dir\n'
  find . -mindepth 1 \( -type f -o -type l \) \( "${name_expr[@]}" \) -printf 'daemon /%P\n'
} | sort
