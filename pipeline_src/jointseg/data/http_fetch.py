"""Streaming HTTP download with resume (``Range``) and retries (tenacity).

Transient failures (connection errors, time-outs, cut transfers, 5xx and 429
answers) are retried with exponential back-off (``backoff * 2**(n-1)``
seconds, at most 60). ``n`` counts the failures since bytes last arrived: a
transfer that makes progress before it breaks resets the budget, so a slow
but working link is never given up on. Client errors (401, 403, 404, 410 ...)
are not retried: they raise a :class:`UserError` at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests
import tenacity
from tqdm import tqdm

from ..io_utils import UserError
from .errors import write_error

CHUNK = 1 << 16
FATAL = {400: "bad request", 401: "authentication required", 403: "access forbidden", 404: "not found", 410: "gone"}
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.HTTPError, requests.exceptions.ChunkedEncodingError)


class _Budget:
    """Failures since bytes last arrived, and the bytes of the current attempt."""

    def __init__(self) -> None:
        self.failures = 0
        self.received = 0


def _stream_once(url: str, part: Path, timeout: float, session: requests.Session, budget: _Budget) -> None:
    """One GET (resuming from ``part``'s size); a transient failure raises one of :data:`TRANSIENT`."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        if resp.status_code in FATAL:
            raise UserError(
                f"{url}: HTTP {resp.status_code} ({FATAL[resp.status_code]}) for {part.name[:-5]}; "
                "check the URL in the config (the file may have moved), your access rights, "
                "or point the source at a mirror or local copy"
            )
        if resp.status_code == 416 and offset:
            return  # we already hold every byte; the checksum decides
        if resp.status_code >= 500 or resp.status_code == 429:
            raise requests.HTTPError(f"HTTP {resp.status_code}", response=resp)
        if resp.status_code not in (200, 206):
            raise UserError(f"{url}: unexpected HTTP {resp.status_code}; check the URL")
        if resp.status_code == 200 and offset:
            offset = 0  # the server ignored Range: start over
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, "ab" if offset else "wb") as fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name[:-5],
                leave=False,
                mininterval=1.0,
            ) as bar,
        ):
            for block in resp.iter_content(CHUNK):
                try:  # requests' errors are OSErrors too: only the write is guarded
                    fh.write(block)
                except OSError as exc:
                    raise write_error(exc, part, url) from None
                budget.received += len(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size < total:
        raise requests.ConnectionError("connection closed before the end of the file")


def http_fetch(url: str, part: Path, retries: int, timeout: float, backoff: float, session: requests.Session) -> None:
    """Stream ``url`` into ``part``, resuming with ``Range`` and retrying transient failures."""
    budget = _Budget()

    def attempt() -> None:
        budget.received = 0
        try:
            _stream_once(url, part, timeout, session, budget)
        except TRANSIENT:
            budget.failures = 0 if budget.received else budget.failures + 1
            raise

    def announce(state: tenacity.RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        print(f"jointseg download: {url}: {state.outcome.exception()}; retrying in {wait:.1f}s", file=sys.stderr)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TRANSIENT),
        stop=lambda state: budget.failures > retries,
        wait=lambda state: min(backoff * 2 ** max(budget.failures - 1, 0), 60.0),
        before_sleep=announce,
        reraise=True,
    )
    try:
        retrying(attempt)
    except TRANSIENT as exc:
        raise UserError(
            f"{url}: giving up after {retries} retries ({exc}); {part} holds the bytes so far, "
            "rerun to resume, or download the file by hand and give its path as the source"
        ) from None
