"""Build ragtune's wheel from a clean copy of the source tree, with its SHA-256 beside it and the
node install script: everything a node needs (`make dist`; the tests' second node uses it too).

    .venv/bin/python tools/build_wheel.py [OUT_DIR]      (default dist/)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = ROOT / "cluster" / "install-ragtune.sh"
# What a checkout holds beside the source: never part of the wheel.
LOCAL_ONLY = (".git", ".venv", "build", "dist", "*.egg-info", "data", "runs", "mlruns", ".whl", ".devbundle")


def build_wheel(out_dir: Path, source: Path = ROOT) -> Path:
    """The wheel built into `out_dir` (with WHEEL.sha256 and install-ragtune.sh beside it).
    It is built from a copy: setuptools' build/ folder would keep modules deleted since."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "source"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*LOCAL_ONLY, "__pycache__"))
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
            + ["-w", str(Path(scratch) / "wheel"), str(copy)],
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            raise RuntimeError(f"pip wheel failed:\n{built.stderr[-3000:]}")
        (wheel,) = (Path(scratch) / "wheel").glob("ragtune-*.whl")
        target = out_dir / wheel.name
        shutil.copy(wheel, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (out_dir / f"{target.name}.sha256").write_text(f"{digest}  {target.name}\n")
    shutil.copy(INSTALL_SCRIPT, out_dir / INSTALL_SCRIPT.name)
    return target


if __name__ == "__main__":
    wheel = build_wheel(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist")
    size_mb = wheel.stat().st_size / 2**20
    print(f"built {wheel} ({size_mb:.2f} MB), sha256 in {wheel.name}.sha256")
