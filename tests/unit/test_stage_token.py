"""The token the gateway presents to the stages: a flag, or a file (compose's stage-token)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_credentials import StageToken


def test_flag_file_or_none(tmp_path: Path) -> None:
    token_file = tmp_path / "stage-token"
    token_file.write_text("from-the-file\n")
    assert StageToken(GatewaySettings(stage_auth_token="from-the-flag")).current() == "from-the-flag"  # type: ignore[arg-type]
    assert StageToken(GatewaySettings(stage_auth_token_file=str(token_file))).current() == "from-the-file"
    assert not StageToken(GatewaySettings()).configured


def test_bad_files_and_both_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"stage_auth_token_file.*No such file"):
        StageToken(GatewaySettings(stage_auth_token_file=str(tmp_path / "absent")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InvalidArgument, match=r"stage_auth_token_file.*empty"):
        StageToken(GatewaySettings(stage_auth_token_file=str(empty)))
    empty.write_text("x\n")
    with pytest.raises(InvalidArgument, match="not both"):
        StageToken(GatewaySettings(stage_auth_token="t", stage_auth_token_file=str(empty)))  # type: ignore[arg-type]


def _rewrite(path: Path, text: str) -> None:
    """Write and move the modification time on, as a rotation seconds later would."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_rotated_file_is_read_again_and_a_half_rotated_one_keeps_the_last_token(tmp_path: Path) -> None:
    """Before, the file was read once at start-up: a rotated Secret needed a gateway restart."""
    token_file = tmp_path / "stage-token"
    token_file.write_text("old\n")
    token = StageToken(GatewaySettings(stage_auth_token_file=str(token_file)))
    _rewrite(token_file, "# rotated\nnew\n")
    assert token.current() == "new"
    _rewrite(token_file, "\n")  # mid-rotation: empty for a moment
    assert token.current() == "new"
    token_file.unlink()  # a Secret's symlink swap
    assert token.current() == "new"
    token_file.write_text("newer\n")
    assert token.current() == "newer"
