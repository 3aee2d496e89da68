"""Files as tests check and forge them: a digest, and a tar holding exactly what it is told."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_tar(out: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A tar of exactly these members (hostile ones included: tarfile writes what it is
    given), each regular member's size taken from its bytes."""
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out
