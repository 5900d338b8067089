"""The token the gateway presents to the stages: a flag, or a file (compose's stage-token)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.gateway.settings import GatewaySettings
from voxmesh.gateway.stage_credentials import stage_token


def test_flag_file_or_none(tmp_path: Path) -> None:
    token_file = tmp_path / "stage-token"
    token_file.write_text("from-the-file\n")
    assert stage_token(GatewaySettings(stage_auth_token="from-the-flag")) == "from-the-flag"  # type: ignore[arg-type]
    assert stage_token(GatewaySettings(stage_auth_token_file=str(token_file))) == "from-the-file"
    assert stage_token(GatewaySettings()) is None


def test_bad_files_and_both_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"stage_auth_token_file.*No such file"):
        stage_token(GatewaySettings(stage_auth_token_file=str(tmp_path / "absent")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InvalidArgument, match=r"stage_auth_token_file.*empty"):
        stage_token(GatewaySettings(stage_auth_token_file=str(empty)))
    empty.write_text("x\n")
    with pytest.raises(InvalidArgument, match="not both"):
        stage_token(GatewaySettings(stage_auth_token="t", stage_auth_token_file=str(empty)))  # type: ignore[arg-type]
