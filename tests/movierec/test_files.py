"""movierec.files: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import pytest

from movierec.files import atomic_path, write_atomically


def test_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "page.html"
    write_atomically(target, "first")
    write_atomically(target, b"second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["page.html"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "page.html"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half of the new")
            raise RuntimeError("crash in the middle")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_the_file_is_readable_by_others(tmp_path):
    target = write_atomically(tmp_path / "a.zip", b"x")
    assert target.stat().st_mode & 0o777 == 0o644
