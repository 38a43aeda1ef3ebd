#!/usr/bin/env python3
"""Repack a wheel for the device bundle: strip ELF debug info, optionally trim Ray.

usage: repack_wheel.py SRC_WHEEL OUT_DIR [--trim-ray] [--retag-py3] [--unpack-dir DIR] [--keep-unpacked]

Unpacks SRC_WHEEL (into --unpack-dir, wiped first; default a temp dir), with --trim-ray deletes the
parts of Ray the ragtune device run never uses (Java jars, dashboard web UI, RLlib, Serve, Ray LLM,
examples, cloud autoscaler providers), runs `strip --strip-unneeded` on every ELF file, regenerates
the dist-info RECORD (sha256 + size of each remaining file) and re-zips it (deflate level 9) to
OUT_DIR/<same filename>. --retag-py3 (for a wheel with no compiled files that was tagged for the
build interpreter, e.g. cp311-cp311-linux_x86_64) rewrites its tag to py3-none-any.
"""

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# Relative to the unpacked wheel root. Everything here is checked to exist (so a Ray upgrade that
# moves things is noticed) unless it is marked optional with a leading '?'.
REMOVE = [
    "ray/jars",  # Java worker (31 MiB compressed)
    "ray/dashboard/client",  # dashboard web UI (JS build); include_dashboard=False
    "ray/rllib",
    "ray/serve",
    "ray/llm",
    "ray/data/llm.py",  # ray.data.llm imports ray.llm
    "ray/dashboard/modules/serve",  # serve dashboard module imports ray.serve
    "ray/tune/examples",
    "ray/train/examples",
    "ray/train/v2/examples",
    "ray/air/examples",
    # cloud-provider autoscaler code/configs (only imported lazily for those providers)
    "ray/autoscaler/_private/aws",
    "ray/autoscaler/_private/gcp",
    "ray/autoscaler/_private/_azure",
    "ray/autoscaler/_private/aliyun",
    "ray/autoscaler/_private/vsphere",
    "ray/autoscaler/aws",
    "ray/autoscaler/gcp",
    "ray/autoscaler/azure",
    "ray/autoscaler/aliyun",
    "ray/autoscaler/vsphere",
]


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def record_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def main():
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("outdir")
    ap.add_argument("--trim-ray", action="store_true")
    ap.add_argument("--retag-py3", action="store_true")
    ap.add_argument("--unpack-dir")
    ap.add_argument("--keep-unpacked", action="store_true")
    a = ap.parse_args()
    src, outdir = a.src, a.outdir
    unpack = a.unpack_dir or tempfile.mkdtemp(prefix="repack-")
    if os.path.exists(unpack):
        shutil.rmtree(unpack)
    os.makedirs(unpack)
    with zipfile.ZipFile(src) as z:
        z.extractall(unpack)
        # zipfile drops the exec bits: restore them from the archive
        for info in z.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(os.path.join(unpack, info.filename), mode)

    for rel in REMOVE if a.trim_ray else []:
        optional = rel.startswith("?")
        rel = rel.lstrip("?")
        p = os.path.join(unpack, rel)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
        elif not optional:
            sys.exit(f"repack_wheel: expected {rel} in the wheel; Ray layout changed, review REMOVE")

    # strip debug info / unneeded symbols from all ELF files
    before = after = 0
    for root, _, files in os.walk(unpack):
        for fn in files:
            p = os.path.join(root, fn)
            if not os.path.islink(p) and is_elf(p):
                before += os.path.getsize(p)
                subprocess.run(["strip", "--strip-unneeded", p], check=True)
                after += os.path.getsize(p)
    print(
        f"repack_wheel: {os.path.basename(src)}: stripped ELF files "
        f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB"
    )

    distinfo = [d for d in os.listdir(unpack) if d.endswith(".dist-info")]
    assert len(distinfo) == 1, distinfo
    distinfo = distinfo[0]

    # drop the `serve` console script (ray.serve is gone)
    ep = os.path.join(unpack, distinfo, "entry_points.txt")
    if a.trim_ray and os.path.exists(ep):
        with open(ep) as f:
            lines = [ln for ln in f if not ln.startswith("serve =")]
        with open(ep, "w") as f:
            f.writelines(lines)

    outname = os.path.basename(src)
    if a.retag_py3:
        for root, _, fns in os.walk(unpack):
            for fn in fns:
                if is_elf(os.path.join(root, fn)) or fn.endswith((".so", ".pyd")):
                    sys.exit(f"repack_wheel: --retag-py3 but {fn} is compiled")
        wf = os.path.join(unpack, distinfo, "WHEEL")
        with open(wf) as f:
            lines = [ln for ln in f if ln.strip() and not ln.startswith(("Tag:", "Root-Is-Purelib:"))]
        lines += ["Root-Is-Purelib: true\n", "Tag: py3-none-any\n"]
        with open(wf, "w") as f:
            f.writelines(lines)
        name, version = outname.split("-")[:2]
        outname = f"{name}-{version}-py3-none-any.whl"

    # collect files: package files first, dist-info last (RECORD very last)
    record_rel = f"{distinfo}/RECORD"
    files = []
    for root, dirs, fns in os.walk(unpack):
        dirs.sort()
        for fn in sorted(fns):
            rel = os.path.relpath(os.path.join(root, fn), unpack).replace(os.sep, "/")
            if "/__pycache__/" in f"/{rel}" or rel.endswith(".pyc"):
                continue
            if rel != record_rel:
                files.append(rel)
    files.sort(key=lambda r: (r.startswith(distinfo + "/"), r))

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for rel in files:
        p = os.path.join(unpack, rel)
        w.writerow([rel, record_hash(p), os.path.getsize(p)])
    w.writerow([record_rel, "", ""])
    with open(os.path.join(unpack, record_rel), "w") as f:
        f.write(buf.getvalue())

    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, outname)
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for rel in files + [record_rel]:
            p = os.path.join(unpack, rel)
            info = zipfile.ZipInfo.from_file(p, rel)
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(p, "rb") as f:
                z.writestr(info, f.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, out)
    if not a.keep_unpacked:
        shutil.rmtree(unpack)
    print(
        f"repack_wheel: {os.path.basename(src)}: wrote {out} "
        f"({os.path.getsize(out) / 2**20:.2f} MiB, {len(files) + 1} files)"
    )


if __name__ == "__main__":
    main()
