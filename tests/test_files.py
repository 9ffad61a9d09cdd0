"""Atomic writes: a write that fails leaves the previous file (or none) and no temporaries."""

from __future__ import annotations

import numpy as np
import pytest

from inrkit.files import atomic_path, atomic_write, atomic_write_bytes


class Boom(Exception):
    pass


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("existing", [None, b"old contents"])
def test_failing_atomic_write_leaves_no_partial_file(tmp_path, existing):
    target = tmp_path / "out.bin"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(Boom), atomic_write(target) as handle:
        handle.write(b"half of it")
        raise Boom
    assert (target.read_bytes() if target.exists() else None) == existing
    assert [p.name for p in tmp_path.iterdir()] == ([] if existing is None else ["out.bin"])


@pytest.mark.parametrize("existing", [None, b"old contents"])
def test_failing_atomic_path_leaves_no_partial_file(tmp_path, existing):
    target = tmp_path / "clip.gif"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(Boom), atomic_path(target, ".gif") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".gif" and tmp != target
        tmp.write_bytes(b"half of it")
        raise Boom
    assert (target.read_bytes() if target.exists() else None) == existing
    assert [p.name for p in tmp_path.iterdir()] == ([] if existing is None else ["clip.gif"])


def test_failing_mp4_write_leaves_no_partial_file(tmp_path):
    from inrkit.io.video import write_mp4

    def frames():
        for _ in range(3):
            yield np.zeros((16, 16, 3), np.uint8)
        raise Boom

    with pytest.raises(Boom):
        write_mp4(tmp_path / "clip.mp4", frames(), fps=10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, mask):
    """mkstemp makes 0600 files; a file inrkit writes gets 0666 less the umask, as open() would give it."""
    import os

    previous = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        with atomic_path(tmp_path / "b.gif", ".gif") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(previous)
    for name in ("a.bin", "b.gif"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert target.stat().st_mode & 0o777 == 0o640


def test_check_output_policy(tmp_path, monkeypatch):
    from inrkit.errors import InrkitError
    from inrkit.files import check_output

    existing = tmp_path / "x.png"
    existing.write_bytes(b"precious")
    with pytest.raises(InrkitError, match="exists; pass --overwrite"):
        check_output(existing)
    assert check_output(existing, overwrite=True) == existing
    with pytest.raises(InrkitError, match="is an input of this command"):
        check_output(existing, overwrite=True, inputs=[existing])
    with pytest.raises(InrkitError, match="is a directory"):
        check_output(tmp_path, overwrite=True)
    link = tmp_path / "link.png"
    link.symlink_to(existing)
    with pytest.raises(InrkitError, match="symbolic link"):
        check_output(link, overwrite=True)
    with pytest.raises(InrkitError, match="is not a directory"):
        check_output(existing / "deeper" / "y.png")
    with pytest.raises(InrkitError, match=r"holds .* --overwrite would delete it"):
        check_output(tmp_path, overwrite=True, inputs=[existing], folder=True)
    # an unwritable folder (simulated: the tests may run as root, who may write anywhere)
    import inrkit.files

    monkeypatch.setattr(inrkit.files.os, "access", lambda path, mode: False)
    with pytest.raises(InrkitError, match="is not writable"):
        check_output(tmp_path / "new" / "z.png")
    assert existing.read_bytes() == b"precious"
