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
