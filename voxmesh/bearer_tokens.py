"""The bearer tokens a server accepts: ``--auth-token`` and/or a file of them.

A file holds one token per client app (one per line, ``#`` comments and blank
lines ignored), so each app has its own ``max_sessions_per_client`` quota and
can be revoked alone. The file is read again when its modification time
changes: a rotated Kubernetes Secret or an edited file takes effect on the
next call, without a restart.
"""

from __future__ import annotations

import hmac
import logging
import os

log = logging.getLogger(__name__)


def parse_tokens(text: str) -> list[str]:
    """The tokens of a token file, in order: one per line, ``#`` comments and blank lines skipped."""
    return [t for line in text.splitlines() if (t := line.strip()) and not t.startswith("#")]


def read_tokens_file(path: str) -> frozenset[bytes]:
    """The tokens in ``path``; refuses (SystemExit, one line) a file that is missing or empty."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SystemExit(f"auth_tokens_file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SystemExit(f"auth_tokens_file {path!r}: not UTF-8 text (one token per line)") from None
    tokens = frozenset(t.encode() for t in parse_tokens(text))
    if not tokens:
        raise SystemExit(f"auth_tokens_file {path!r} holds no token (one per line)")
    return tokens


class BearerTokens:
    """Checks an ``authorization`` header against every accepted token, in constant time."""

    def __init__(self, token: str | None = None, tokens_file: str | None = None) -> None:
        self._fixed = frozenset([token.encode()]) if token else frozenset[bytes]()
        self._path = tokens_file
        self._mtime_ns = -1
        self._from_file = frozenset[bytes]()
        if tokens_file:
            self._reload()

    @property
    def required(self) -> bool:
        return bool(self._fixed or self._path)

    def _reload(self) -> None:
        assert self._path is not None
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except OSError as exc:
            if self._mtime_ns < 0:
                raise SystemExit(f"auth_tokens_file {self._path!r}: {exc.strerror}") from None
            return  # mid-rotation (a Secret's symlink swap): keep the last good set
        if mtime == self._mtime_ns:
            return
        try:
            self._from_file = read_tokens_file(self._path)
        except SystemExit as exc:
            if self._mtime_ns < 0:
                raise
            log.warning("%s; keeping the tokens read before", exc)
            return
        self._mtime_ns = mtime
        log.info("auth tokens read", extra={"fields": {"file": self._path, "tokens": len(self._from_file)}})

    def accepts(self, header: str | bytes) -> bool:
        """Whether ``header`` is ``Bearer <an accepted token>``."""
        if self._path:
            self._reload()
        given = header.encode() if isinstance(header, str) else header
        # Every token is compared (no early exit): timing must not say which one nearly matched.
        matched = False
        for token in self._fixed | self._from_file:
            matched |= hmac.compare_digest(given, b"Bearer " + token)
        return matched
