#!/usr/bin/env bash
# build-sample.sh: regenerate the committed sample image from real image tools.
#
#   sudo testdata/build-sample.sh          (from any directory; needs root)
#
# Why: imgscan's end-to-end tests, the README's first command and CI's SARIF check
# scan one small image that real builders produced, not bytes our own code wrote. It
# is built with umoci (init/new/unpack/repack/config), the busybox binary from
# Debian's busybox-static package (`apt-get download` + `dpkg -x`) and setcap on the
# host, then exported with skopeo. Each layer is its own `umoci repack` with a
# `--history.created_by` that says what it holds:
#
#   0 busybox-static rootfs  /bin/busybox 0755 + applet links (sh ls cat echo id ps vi),
#                            /usr/sbin/telnetd -> ../../bin/busybox, /etc/passwd,
#                            /etc/group, /tmp 1777, /home/app 1000:1000, /root 0700
#   1 install helpers        /usr/local/bin/suid-helper 4755, /usr/bin/pinger
#                            cap_net_raw+ep, /usr/bin/admin-tool cap_setuid,cap_sys_admin+ep,
#                            /usr/local/bin/sgid-tool root:shadow 2755, /var/mail dir 2775
#   2 shared dirs            /srv/shared dir 0777, /srv/dropbox dir 1777, /etc/app.conf
#                            0666, /usr/local/bin/old-suid 4755, /opt/legacy/bin/legacy-suid 4755
#   3 cleanup                rm /usr/local/bin/old-suid, rm -r /opt/legacy (whiteouts)
#   config                   no User (root), ExposedPorts 23/tcp, Cmd /bin/sh,
#                            WorkingDir /, linux/amd64, author "imgscan testdata"
#
# Outputs (committed; see testdata/README.md for the expected findings):
#   testdata/sample/oci/        OCI image layout, gzip layers, tag "sample"
#   testdata/sample-docker.tar  skopeo docker-archive of it, RepoTag imgscan/sample:latest
#   testdata/sample.oracle      testdata/oracle.sh's answer for testdata/sample/oci:sample
#
# Deterministic as far as the tools allow: every path's mtime is set to
# SOURCE_DATE_EPOCH (default 0) before each repack, and the config and history
# timestamps are that date too. The layer bytes still depend on the busybox-static
# version Debian serves (printed below; pin it with BUSYBOX_VERSION=...) and on the
# umoci/skopeo builds (Debian bookworm umoci 0.4.7, skopeo 1.9.3).
set -euo pipefail
export LC_ALL=C
# setcap/getcap live in /usr/sbin, not on a normal user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
umask 022

prog=build-sample.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
say() { printf '%s: %s\n' "$prog" "$*"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in umoci skopeo setcap getcap apt-get dpkg sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/install-test-deps"
done
# chown to other users and setcap (CAP_SETFCAP) need root; so does a faithful unpack.
[ "$EUID" -eq 0 ] || die "must run as root (chown, setcap): sudo $0"

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/imgscan-sample.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- busybox from Debian's busybox-static package -----------------------------------
mkdir "$tmp/deb"
pkg=busybox-static${BUSYBOX_VERSION:+=$BUSYBOX_VERSION}
say "apt-get download $pkg"
# APT::Sandbox::User=root: the temp dir is private, so apt's _apt user could not write it.
(cd "$tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$pkg") \
  || die "apt-get download $pkg failed (run apt-get update, or scripts/install-test-deps)"
deb=$(echo "$tmp"/deb/busybox-static_*.deb)
[ -f "$deb" ] || die "no busybox-static .deb was downloaded"
dpkg -x "$deb" "$tmp/deb/x"
bb=$tmp/deb/x/bin/busybox
[ -x "$bb" ] || die "$deb has no bin/busybox"
bb_version=$(dpkg-deb -f "$deb" Version)
say "busybox-static $bb_version, bin/busybox sha256 $(sha256sum "$bb" | cut -d' ' -f1)"

# --- image ------------------------------------------------------------------------
oci=$tmp/oci
img=$oci:sample
bundle=$tmp/bundle
rootfs=$bundle/rootfs
umoci init --layout "$oci"
umoci new --image "$img"
umoci unpack --image "$img" "$bundle"

# repack CREATED_BY: one new layer with everything that changed in the rootfs since the
# last repack. Resetting every mtime first means unchanged paths stay unchanged for
# umoci's mtree diff (and a directory whose only change is a removed child is not
# re-emitted), and the layer bytes do not depend on when the script ran.
repack() {
  find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  say "umoci repack: $1"
  umoci repack --refresh-bundle --image "$img" \
    --history.created "$created" --history.author "imgscan testdata" \
    --history.created_by "$1" "$bundle"
}
# dir MODE UID:GID PATH...: a directory with exactly these attributes. mkdir and
# install -d leave setgid/sticky bits to the umask and parent, so chmod explicitly.
dir() {
  local mode=$1 owner=$2 p
  shift 2
  for p in "$@"; do
    mkdir -p "$rootfs/$p"
    chown "$owner" "$rootfs/$p"
    chmod "$mode" "$rootfs/$p"
  done
}
# file MODE UID:GID PATH [SRC]: a copy of SRC (default: busybox); chown before chmod,
# since chown clears the setuid/setgid bits.
file() {
  local mode=$1 owner=$2 path=$3 src=${4:-$bb}
  cp "$src" "$rootfs/$path"
  chown "$owner" "$rootfs/$path"
  chmod "$mode" "$rootfs/$path"
}

# Layer 0: busybox-static rootfs.
dir 0755 0:0 bin etc usr usr/sbin home
dir 1777 0:0 tmp
dir 0700 0:0 root
dir 0755 1000:1000 home/app
file 0755 0:0 bin/busybox
for applet in sh ls cat echo id ps vi; do
  ln -s busybox "$rootfs/bin/$applet"
done
# busybox has a telnetd applet: this link makes the image ship a remote-shell daemon.
ln -s ../../bin/busybox "$rootfs/usr/sbin/telnetd"
cat >"$tmp/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1::/usr/sbin:/bin/false
nobody:x:65534:65534::/nonexistent:/bin/false
app:x:1000:1000::/home/app:/bin/sh
EOF
cat >"$tmp/group" <<'EOF'
root:x:0:
daemon:x:1:
shadow:x:42:
tty:x:5:
app:x:1000:
nogroup:x:65534:
EOF
file 0644 0:0 etc/passwd "$tmp/passwd"
file 0644 0:0 etc/group "$tmp/group"
repack "busybox-static rootfs: /bin/busybox ($bb_version) with applet links sh ls cat echo id ps vi, /usr/sbin/telnetd -> ../../bin/busybox, /etc/passwd, /etc/group, /tmp 1777, /home/app, /root"

# Layer 1: install helpers.
dir 0755 0:0 usr/local usr/local/bin usr/bin var
file 4755 0:0 usr/local/bin/suid-helper
file 0755 0:0 usr/bin/pinger
setcap cap_net_raw+ep "$rootfs/usr/bin/pinger"
file 0755 0:0 usr/bin/admin-tool
setcap cap_sys_admin,cap_setuid+ep "$rootfs/usr/bin/admin-tool"
file 2755 0:42 usr/local/bin/sgid-tool
# A setgid directory only makes new files inherit the group: not a finding.
dir 2775 0:0 var/mail
repack "install helpers: /usr/local/bin/suid-helper 4755, /usr/bin/pinger cap_net_raw+ep, /usr/bin/admin-tool cap_sys_admin,cap_setuid+ep, /usr/local/bin/sgid-tool root:shadow 2755, /var/mail 2775"

# Layer 2: shared dirs, and two setuid files that layer 3 deletes again.
dir 0755 0:0 srv opt opt/legacy opt/legacy/bin
dir 0777 0:0 srv/shared
dir 1777 0:0 srv/dropbox
printf 'listen = 0.0.0.0:23\nshell = /bin/sh\n' >"$tmp/app.conf"
file 0666 0:0 etc/app.conf "$tmp/app.conf"
file 4755 0:0 usr/local/bin/old-suid
file 4755 0:0 opt/legacy/bin/legacy-suid
repack "shared dirs: /srv/shared 0777, /srv/dropbox 1777, /etc/app.conf 0666, /usr/local/bin/old-suid 4755, /opt/legacy/bin/legacy-suid 4755"

# Layer 3: cleanup. /etc/app.conf deliberately stays 0666.
rm "$rootfs/usr/local/bin/old-suid"
rm -r "$rootfs/opt/legacy"
repack "cleanup: rm /usr/local/bin/old-suid; rm -r /opt/legacy"

say "umoci config"
umoci config --image "$img" \
  --created "$created" --author "imgscan testdata" \
  --os linux --architecture amd64 \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.exposedports 23/tcp --config.cmd /bin/sh --config.workingdir / \
  --history.created "$created" --history.author "imgscan testdata" \
  --history.created_by "umoci config --config.exposedports 23/tcp --config.cmd /bin/sh --config.workingdir / (no --config.user: runs as root)"
# Drop the intermediate manifests and configs every repack left behind.
umoci gc --layout "$oci"

say "skopeo copy oci:sample docker-archive:imgscan/sample:latest"
# --insecure-policy: a local-to-local copy; don't depend on the host's policy.json.
skopeo --insecure-policy copy -q "oci:$img" "docker-archive:$tmp/sample-docker.tar:imgscan/sample:latest"

# --- install the outputs ------------------------------------------------------------
rm -rf "$here/sample/oci"
mkdir -p "$here/sample"
cp -R "$oci" "$here/sample/oci"
cp "$tmp/sample-docker.tar" "$here/sample-docker.tar"
# umoci writes blobs 0600; the tests may run as another user.
chmod -R a+rX,go-w "$here/sample/oci" "$here/sample-docker.tar"
"$here/oracle.sh" "$here/sample/oci:sample" >"$tmp/sample.oracle"
cp "$tmp/sample.oracle" "$here/sample.oracle"

say "layers and history:"
umoci stat --image "$here/sample/oci:sample" | sed 's/^/  /'
say "oracle (testdata/sample.oracle):"
sed 's/^/  /' "$here/sample.oracle"
say "sizes:"
du -sh "$here/sample/oci" "$here/sample-docker.tar" "$here/sample.oracle" | sed 's/^/  /'
say "total $(du -cb "$here/sample/oci" "$here/sample-docker.tar" "$here/sample.oracle" | tail -1 | cut -f1) bytes"
