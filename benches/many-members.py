#!/usr/bin/env python3
"""Writes a docker-archive with one layer of 60,600 members (600 directories
x 100 small files, five setuid) to the path given, for instruction counts
with callgrind (docs/benchmarks.md, issue #10). Deterministic: same bytes
every run.

    python3 benches/many-members.py /tmp/many.tar
"""
import hashlib
import io
import json
import sys
import tarfile


def member(t, name, data=b"", mode=0o644, typ=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.type = typ
    ti.mtime = 0
    t.addfile(ti, io.BytesIO(data) if data else None)


def layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in ["etc", "usr", "usr/bin"]:
            member(t, d, mode=0o755, typ=tarfile.DIRTYPE)
        member(t, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        member(t, "etc/group", b"root:x:0:\napp:x:1000:\n")
        for i in range(600):
            member(t, f"usr/d{i}", mode=0o755, typ=tarfile.DIRTYPE)
            for j in range(100):
                setuid = j == 0 and i < 5
                member(t, f"usr/d{i}/f{j}", b"x" * ((i * j) % 300), 0o4755 if setuid else 0o644)
    return buf.getvalue()


def main(path):
    tar = layer()
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "app"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "benches/many-members.py"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["bench:1"], "Layers": ["layer/layer.tar"]}]).encode()
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as t:
        for name, data in [(config_name, config), ("layer/layer.tar", tar), ("manifest.json", manifest)]:
            member(t, name, data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: many-members.py OUT.tar")
    main(sys.argv[1])
