"""``inrkit bench``: protocols as data (shipped ones load at every scale; a bad file is one line, exit 2) and a
bench that resumes after Ctrl-C without redoing finished cells."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from conftest import smooth_image, to_uint

from inrkit.api.bench import run_bench
from inrkit.api.bench_results import RESULTS_FILE, latest_results
from inrkit.api.protocols import SCALES, load_protocol, protocol_names
from inrkit.cli import main
from inrkit.files import read_json_lines
from inrkit.io.images import write_image
from inrkit.train import TrainingInterrupted

PAPERS = {"finer-div2k", "sl2a-div2k", "siren-audio", "resfields-video", "coin-kodak", "ingp-image",
          "ingp-nerf-synthetic", "sl2a-shapes"}


def tiny_protocol(folder: Path, **changes: object) -> Path:
    """A protocol file for two backbones on the PNGs of ``folder/data``: ``relu`` 10 steps, ``siren`` 1.2 s."""
    protocol = {
        "name": "tiny", "version": 1, "title": "two tiny backbones", "task": "fit",
        "data": {"glob": "data/*.png", "expect": 1},
        "models": {"relu": {"steps": 10}, "siren": {"seconds": 1.2}},
        "options": {"width": 8, "depth": 2, "eval_every": 5, "device": "cpu", "seed": 0},
        "metrics": ["psnr"],
        "published": {"metric": "psnr", "sources": {"s": "a stated number"},
                      "values": {"siren": {"value": 20.0, "source": "s", "per_signal": {"a": 21.0}}}},
        **changes,
    }
    path = folder / "tiny.json"
    path.write_text(json.dumps(protocol))
    return path


def test_shipped_protocols_load_at_every_scale():
    assert set(protocol_names()) == PAPERS
    for name in PAPERS:
        full, cpu = (load_protocol(name, scale) for scale in SCALES)
        assert full.scale == "full" and cpu.scale == "cpu" and cpu.factors  # every shrink is stated
        assert full.to_json()["name"] == name and full.version >= 1
        for label in full.models:
            options = full.cell_options(label)
            assert options["preset" if full.task == "nerf" else "model"] == full.preset(label)
    finer = load_protocol("finer-div2k")
    assert finer.cell_options("wire")["lr"] == 5e-3 and finer.cell_options("siren")["steps"] == 5000
    assert finer.published_value("siren", ["00", "05", "10", "15"]) == (pytest.approx((29.29 + 30.73 + 37.25 + 32.23) / 4), True)
    assert finer.published_value("siren", ["01"]) == (33.47, False)  # no per-image number: the whole set's mean


@pytest.mark.parametrize(("change", "message"), [
    ({"options": {"stepz": 10}}, "unknown key 'stepz' in 'options'"),
    ({"models": {"siren": {"widht": 8}}}, "unknown key 'widht' in 'models.siren'"),
    ({"metrcs": ["psnr"]}, "unknown key 'metrcs' in 'top level'"),
    ({"data": {"glob": "nowhere/*.png", "expect": 3}}, "dataset missing for protocol tiny: 0 of 3 signals match"),
])
def test_bad_protocol_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict,
                                                  message: str):
    (tmp_path / "data").mkdir()
    write_image(tmp_path / "data" / "a.png", to_uint(smooth_image(8, 8, 3)))
    status = main(["bench", str(tiny_protocol(tmp_path, **change)), "--data", str(tmp_path), "--out",
                   str(tmp_path / "bench")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "bench" / "cells").exists()


def test_unknown_protocol_and_scale(capsys: pytest.CaptureFixture[str]):
    assert main(["bench", "finer-div3k", "--data", "."]) == 2
    assert "unknown protocol 'finer-div3k'; known: coin-kodak" in capsys.readouterr().err
    assert main(["bench", "finer-div2k", "--scale", "gpu", "--data", "."]) == 2
    assert "--scale must be one of full, cpu" in capsys.readouterr().err


def test_bench_resumes_after_ctrl_c_without_redoing_finished_cells(tmp_path: Path):
    (tmp_path / "data").mkdir()
    write_image(tmp_path / "data" / "a.png", to_uint(smooth_image(12, 12, 3)))
    protocol = load_protocol(tiny_protocol(tmp_path))
    bench = tmp_path / "bench"

    def ctrl_c_during_next_cell(line: str) -> None:  # relu's cell is done: Ctrl-C lands in siren's training
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

    with pytest.raises(TrainingInterrupted, match="bench interrupted in cell siren/a"):
        run_bench(protocol, tmp_path, bench, echo=ctrl_c_during_next_cell)
    assert [(r["cell"], r["status"]) for r in read_json_lines(bench / RESULTS_FILE)] == \
        [("relu/a", "done"), ("siren/a", "interrupted")]
    relu_weights = bench / "cells" / "relu" / "a" / "weights.safetensors"
    finished = relu_weights.stat().st_mtime_ns
    assert (bench / "cells" / "siren" / "a" / "checkpoint.json").is_file()  # the interrupted cell's resumable state

    result = run_bench(protocol, tmp_path, bench)
    assert relu_weights.stat().st_mtime_ns == finished  # the finished cell was not run again
    records = read_json_lines(bench / RESULTS_FILE)
    assert [(r["cell"], r["status"]) for r in records] == \
        [("relu/a", "done"), ("siren/a", "interrupted"), ("siren/a", "done")]
    siren = latest_results(bench)["siren/a"]
    assert siren["metrics"]["elapsed"] >= 1.2  # resumed to the whole budget
    assert result.problems() == []
    table = result.table()
    assert "| siren |" in table and "21.00 |" in table  # the per-image published number, same signal
    assert (bench / "table.md").read_text().strip() == table
