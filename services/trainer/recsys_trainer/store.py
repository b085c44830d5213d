"""Model store writer (docs/models.md, shared/DESIGN.md "Contracts").

<store>/<model>/<version>/{model.onnx, item_embeddings.f32, item_vocab.tsv, manifest.json}
<store>/<model>/CURRENT  -> the version name, replaced atomically.

A version directory is assembled under a hidden temporary name in the same
parent and renamed into place when complete, so a reader never sees a partial
version; CURRENT is written to a temporary file and os.replace()d.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

MANIFEST = "manifest.json"
CURRENT = "CURRENT"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_version_name(suffix: str = "", now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    name = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-{suffix}" if suffix else name


def unique_version_name(store: str | Path, model: str, suffix: str = "") -> str:
    """new_version_name, with -2, -3, ... appended if that name is taken (two runs in one second)."""
    base = new_version_name(suffix)
    name, n = base, 1
    while (Path(store) / model / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def staging_dir(store: str | Path, model: str, version: str) -> Path:
    d = Path(store) / model / f".tmp-{version}-{os.getpid()}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


class StaleParent(RuntimeError):
    """CURRENT moved since the version was derived from it (another publisher won)."""


@contextlib.contextmanager
def _publish_lock(model_dir: Path):
    """Serialises publishers of one model (the nightly job and the online trainer share a store)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / ".publish.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _finite(x):
    """NaN and infinities (e.g. a cold-item AUC on a holdout without cold items) become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def strict_json(x, indent: int | None = None) -> str:
    """JSON that every parser reads: json.dumps writes NaN, which JSON.parse (the services, the
    online trainer) refuses."""
    return json.dumps(_finite(x), indent=indent, allow_nan=False)


def publish(store: str | Path, model: str, version: str, staged: Path, manifest: dict,
            expect_current: str | None = None) -> Path:
    """Checksum every file in `staged`, write the manifest, move the directory into place
    and point CURRENT at it. Returns the final version directory.

    `expect_current`: publish only if CURRENT still names this version (a fine-tune of the
    serving version must not replace a newer one published meanwhile, e.g. by the nightly
    job); otherwise raises StaleParent and leaves `staged` for the caller to remove."""
    files = {p.name: sha256_file(p) for p in sorted(staged.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**manifest, "model": model, "version": version, "files": files}
    (staged / MANIFEST).write_text(strict_json(manifest, indent=2) + "\n")
    model_dir = Path(store) / model
    final = model_dir / version
    with _publish_lock(model_dir):
        if expect_current is not None and read_current(store, model) != expect_current:
            raise StaleParent(f"{model}: CURRENT is {read_current(store, model)}, not {expect_current}")
        if final.exists():
            raise FileExistsError(f"version already exists: {final}")
        os.replace(staged, final)
        set_current(store, model, version)
    return final


def set_current(store: str | Path, model: str, version: str) -> None:
    model_dir = Path(store) / model
    tmp = model_dir / f".{CURRENT}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(version + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, model_dir / CURRENT)


def read_current(store: str | Path, model: str) -> str | None:
    p = Path(store) / model / CURRENT
    return p.read_text().strip() if p.exists() else None


def verify_version(version_dir: str | Path) -> dict:
    """Load a version's manifest and check every listed checksum; raises on a mismatch."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / MANIFEST).read_text())
    for name, digest in manifest["files"].items():
        got = sha256_file(version_dir / name)
        if got != digest:
            raise ValueError(f"{version_dir / name}: sha256 {got} != manifest {digest}")
    return manifest
