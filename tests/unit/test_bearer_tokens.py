"""Accepted bearer tokens: the single flag, a tokens file, and its rotation."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from voxmesh.bearer_tokens import BearerTokens


def touch_later(path: Path) -> None:
    """Move the modification time on (two writes within one clock tick share an mtime)."""
    later = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(later, later))


def test_flag_and_file_tokens_are_accepted_and_nothing_else(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\n  app-a  \n\napp-b\n")
    accepted = BearerTokens("flag-token", str(tokens))
    assert accepted.required
    for token in ("flag-token", "app-a", "app-b"):
        assert accepted.accepts(f"Bearer {token}")
    for header in ("Bearer # comment", "Bearer ", "app-a", "Bearer app-a ", "Bearer app-c", b"Bearer app-"):
        assert not accepted.accepts(header)


def test_no_token_means_none_required() -> None:
    assert not BearerTokens(None, None).required


def test_missing_or_empty_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"auth_tokens_file .*No such file"):
        BearerTokens(None, str(tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(SystemExit, match="holds no token"):
        BearerTokens(None, str(empty))


def test_rotation_takes_effect_and_a_broken_file_keeps_the_last_good_set(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("old\n")
    accepted = BearerTokens(None, str(tokens))
    assert accepted.accepts("Bearer old")
    tokens.write_text("new\n")
    touch_later(tokens)
    assert accepted.accepts("Bearer new") and not accepted.accepts("Bearer old")
    tokens.write_text("")  # a half-written rotation: keep serving the tokens read before
    touch_later(tokens)
    assert accepted.accepts("Bearer new")
    tokens.unlink()  # mid-swap
    assert accepted.accepts("Bearer new")
