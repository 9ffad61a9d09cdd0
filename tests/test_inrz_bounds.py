"""Bounded decoding of ``.inrz`` files (issue 15, items 3-5): only regular files, reading stops at the declared
length, range streams carry enough bits for their codes and are consumed exactly, nesting is capped, and every
file that decodes gives a field that evaluates and whose metadata ``info``/``render`` can use."""

from __future__ import annotations

import copy
import os
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from inrkit.errors import InrkitError
from inrkit.export import compress, inrz, load
from inrkit.fields import build_field


@pytest.fixture(scope="module")
def siren(tmp_path_factory) -> bytes:
    """A small SIREN, range-coded."""
    folder = tmp_path_factory.mktemp("inrz-bounds")
    torch.manual_seed(0)
    compress(build_field("siren", 2, 3, width=16, depth=2), folder / "siren.inrz", coder="range")
    return (folder / "siren.inrz").read_bytes()


def forge(data: bytes, edit_header=None, payload: bytes | None = None) -> bytes:
    """Re-pack after editing the header or payload, checksums recomputed (only deeper checks can object)."""
    header, original = inrz.unpack(data)
    header = copy.deepcopy(header)
    if edit_header is not None:
        edit_header(header)
    return inrz.pack(header, original if payload is None else payload)


def refuse(path: Path, match: str) -> str:
    with pytest.raises(InrkitError, match=match) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- what is read ----------------------------------------------------------------------------------
def test_valid_file_followed_by_gigabytes_is_refused_without_reading_them(siren, tmp_path):
    path = tmp_path / "padded.inrz"
    with open(path, "wb") as handle:
        handle.write(siren)
        handle.truncate(len(siren) + (2 << 30))  # 2 GiB of zeros, sparse: costs no disk
    tracemalloc.start()
    started = time.perf_counter()
    refuse(path, "unexpected bytes after the payload")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20, peak
    assert time.perf_counter() - started < 2.0


def test_symlink_to_dev_zero_is_refused(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    path = tmp_path / "zero.inrz"
    path.symlink_to("/dev/zero")
    refuse(path, "not a regular file")


def test_fifo_is_refused_without_waiting(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "pipe.inrz"
    os.mkfifo(path)
    refuse(path, "not a regular file")


def test_directory_is_refused(tmp_path):
    path = tmp_path / "folder.inrz"
    path.mkdir()
    refuse(path, "is a directory")


def test_symlink_to_a_regular_file_is_read(siren, tmp_path):
    (tmp_path / "real.inrz").write_bytes(siren)
    (tmp_path / "link.inrz").symlink_to(tmp_path / "real.inrz")
    assert load(tmp_path / "link.inrz").field is not None
