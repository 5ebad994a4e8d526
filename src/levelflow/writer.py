"""Atomic file writes: output appears whole or not at all."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Optional


def _file_mode() -> int:
    """The mode a plain open() would give (mkstemp's 0600 would hide output from others)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _stage(path: Path, text: str) -> str:
    """Write `text` to a temporary sibling of `path` and return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(temp, _file_mode())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def write_atomic(path: str | Path, text: str) -> None:
    write_all_atomic({Path(path): text})


def write_all_atomic(files: dict[Path, str]) -> None:
    """Write several files so that a failure part-way leaves none of them changed.

    Every file is first written to a temporary sibling; only when all succeeded are they
    renamed into place. A rename that fails puts back every file already replaced (kept aside
    as a hard link, or removed when it did not exist before), so all land or none does.
    """
    staged: list[tuple[str, Path]] = []
    kept: list[tuple[Path, Optional[str]]] = []  # (target, its previous content's backup or None)
    try:
        for path, text in files.items():
            staged.append((_stage(Path(path), text), Path(path)))
        for temp, path in staged:
            kept.append((path, _keep_aside(path)))
            os.replace(temp, path)
    except BaseException:
        for path, backup in reversed(kept):
            if backup is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(backup, path)
        raise
    finally:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
        for _, backup in kept:
            if backup:
                Path(backup).unlink(missing_ok=True)


def _keep_aside(path: Path) -> Optional[str]:
    """A hard link to the file about to be replaced (None when there is none)."""
    if not path.exists():
        return None
    backup = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.old")
    os.link(path, backup)
    return backup
