"""One wording for write failures while fetching (disk full is the usual one)."""

from __future__ import annotations

import errno
from pathlib import Path

from ..io_utils import UserError


def write_error(exc: OSError, path: Path, url: str) -> UserError:
    """A :class:`UserError` for a failed write of ``path`` (fetched from ``url``)."""
    if exc.errno == errno.ENOSPC:
        return UserError(
            f"disk full while writing {path} (from {url}); free space or choose "
            "another --out, then rerun (the download resumes)"
        )
    return UserError(f"cannot write {path} (from {url}): {exc}")
