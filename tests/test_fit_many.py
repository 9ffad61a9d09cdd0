"""fit-many: a field fitted in a batch is the field fitted alone; resume, changed sources, datasets, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load, load_file

import inrkit
from inrkit.api.neural_dataset import finished_shards
from inrkit.cli import main
from inrkit.io.audio import write_wav
from inrkit.io.images import write_image
from inrkit.signals.image import render
from tests.conftest import smooth_image, to_uint

TINY = {"width": 8, "depth": 2, "steps": 6, "batch_size": 24, "device": "cpu", "quiet": True, "threads": 1,
        "compile": "off"}
# one preset per backbone family, shrunk so that the whole comparison stays fast
FAMILIES = {
    "siren": {}, "spder": {}, "finer": {}, "gauss": {}, "wire": {}, "relu": {}, "sl2a": {"rank": 4, "degree": 8},
    "relu-pe": {"n_frequencies": 3}, "ffn": {},
    "hashgrid": {"width": 16, "depth": 1, "n_levels": 2, "log2_hashmap_size": 6},
}


def _images(folder: Path, n: int, size: tuple[int, int] = (6, 8)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(folder / f"img{i}.png", to_uint(smooth_image(*size, 3, seed=i)))
    return folder


@pytest.mark.parametrize("model", list(FAMILIES))
def test_field_in_a_batch_equals_the_field_fitted_alone(tmp_path: Path, model: str) -> None:
    folder = _images(tmp_path / "in", 2)
    options = {**TINY, **FAMILIES[model]}
    data = inrkit.fit_many(folder, model, out=tmp_path / "ds", seed=3, fields_per_batch=2, **options)
    single = {k: v for k, v in options.items() if k != "compile"}
    alone = inrkit.fit(folder / "img1.png", model, out=tmp_path / "alone", seed=4, **single)  # item 1 has seed 3 + 1
    batched = data.field(1).state_dict()
    for name, value in alone.field.state_dict().items():
        torch.testing.assert_close(batched[name], value, rtol=1e-5, atol=1e-6, msg=f"{model}: {name}")
    assert data[1][1]["psnr"] == pytest.approx(alone.metrics["psnr"], abs=1e-4)


def test_resume_fits_only_unfinished_shards_and_changed_sources(tmp_path: Path) -> None:
    folder = _images(tmp_path / "in", 4)
    out = tmp_path / "ds"
    inrkit.fit_many(folder, "siren", out=out, fields_per_batch=2, **TINY)
    first = out / "shard-00000.safetensors"
    kept = (first.stat().st_mtime_ns, first.read_bytes())
    second = (out / "shard-00001.safetensors").read_bytes()
    (out / "shard-00001.safetensors").unlink()  # an interruption before the second shard was written
    data = inrkit.fit_many(folder, "siren", out=out, fields_per_batch=2, **TINY)
    assert (first.stat().st_mtime_ns, first.read_bytes()) == kept  # never refitted
    assert sorted(finished_shards(out)) == [0, 1] and len(data) == 4
    assert [item["shard"] for item in data.items] == [0, 0, 1, 1]
    assert [r["id"] for r in finished_shards(out)[1]] == [2, 3]
    refitted = load_file(out / "shard-00001.safetensors")
    assert all(torch.equal(refitted[k], v) for k, v in load(second).items())  # the same fields again

    write_image(folder / "img1.png", to_uint(smooth_image(6, 8, 3, seed=9)))  # a changed source
    data = inrkit.fit_many(folder, "siren", out=out, fields_per_batch=2, **TINY)
    assert [r["id"] for r in finished_shards(out)[2]] == [1]
    assert [item["shard"] for item in data.items] == [0, 2, 1, 1]
    assert first.stat().st_mtime_ns == kept[0]


def test_dataset_loads_as_torch_dataset_and_fields(tmp_path: Path) -> None:
    folder = _images(tmp_path / "in", 3)
    inrkit.fit_many(folder, "siren", out=tmp_path / "ds", init="shared", **TINY)
    data = inrkit.load_dataset(tmp_path / "ds")
    assert len(data) == 3
    params, metrics, item = data[2]
    field = data.field(2)
    assert item == 2 and params.shape == (field.n_params,)
    assert torch.equal(params, torch.cat([p.detach().reshape(-1) for p in field.parameters()]))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    batch, _, ids = next(iter(loader))
    assert batch.shape == (2, field.n_params) and ids.tolist() == [0, 1]
    target = to_uint(smooth_image(6, 8, 3, seed=2)).astype(np.float32) / 255.0
    mse = float(np.mean((np.clip(render(field, 6, 8), 0, 1) - target) ** 2))
    assert metrics["psnr"] == pytest.approx(-10 * np.log10(mse), abs=1e-3)
    assert (tmp_path / "ds" / "init.safetensors").is_file() and data.manifest["init"]["mode"] == "shared"
    assert inrkit.load_run(f"{tmp_path / 'ds'}#2").metrics["psnr"] == metrics["psnr"]


def test_meta_init_beats_a_shared_random_init(tmp_path: Path) -> None:
    """Reptile on a family of smooth images: after 10 steps, held-apart members are 2 dB closer than from a random init."""
    train, held = _images(tmp_path / "train", 8, (8, 8)), tmp_path / "held"
    held.mkdir()
    for i in range(3):
        write_image(held / f"h{i}.png", to_uint(smooth_image(8, 8, 3, seed=100 + i)))
    common = {**TINY, "width": 16, "batch_size": None, "schedule": "constant", "lr": 1e-3, "steps": 10}
    learned = inrkit.fit_many(train, "siren", out=tmp_path / "meta", init="meta", meta_steps=60, meta_inner_steps=10,
                              meta_batch=4, **common)
    assert learned.manifest["init"]["meta"]["method"] == "reptile"
    meta = inrkit.fit_many(held, "siren", out=tmp_path / "m", init=str(tmp_path / "meta"), **common)
    plain = inrkit.fit_many(held, "siren", out=tmp_path / "r", init="shared", **common)
    psnr = [np.mean([d[i][1]["psnr"] for i in range(3)]) for d in (meta, plain)]
    assert psnr[0] > psnr[1] + 2.0, psnr


def test_info_render_and_compress_take_one_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _images(tmp_path / "in", 2)
    out = tmp_path / "ds"
    inrkit.fit_many(folder, "siren", out=out, **TINY)
    assert main(["info", str(out)]) == 0 and "2 fitted of 2" in capsys.readouterr().out
    assert main(["render", str(out), "--item", "1", "--size", "16x12"]) == 0
    assert (out / "item-00001-render-16x12.png").is_file()
    assert main(["compress", f"{out}#0", str(tmp_path / "item0.inrz"), "--bits", "8"]) == 0
    assert inrkit.load(tmp_path / "item0.inrz").n_params == inrkit.load_dataset(out).field(0).n_params
    capsys.readouterr()
    assert main(["render", str(out)]) == 2 and "name one item" in capsys.readouterr().err


def _fit_many_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["fit-many", *args, "--width", "8", "--depth", "2", "--steps", "2", "--device", "cpu", "--quiet",
                 "--compile", "off"])
    return code, capsys.readouterr().err


def test_unreadable_input_is_skipped_or_stops_with_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _images(tmp_path / "in", 2)
    (folder / "broken.png").write_bytes(b"not a png")
    code, err = _fit_many_cli(capsys, str(folder), "--out", str(tmp_path / "ds"))
    assert code == 0 and "skipping" in err and "broken.png" in err
    data = inrkit.load_dataset(tmp_path / "ds")
    assert len(data) == 2 and [Path(s["source"]).name for s in data.manifest["skipped"]] == ["broken.png"]
    code, err = _fit_many_cli(capsys, str(folder), "--out", str(tmp_path / "strict"), "--strict")
    assert code == 2 and err.count("\n") == 1 and "broken.png" in err and "--strict" in err
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize("case", ["mixed-kinds", "empty-folder", "fields-per-batch-0", "workers-0", "seconds",
                                  "other-settings"])
def test_bad_fit_many_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    folder = _images(tmp_path / "in", 2)
    extra: list[str] = []
    phrase = {"mixed-kinds": "one kind", "empty-folder": "nothing to fit", "fields-per-batch-0": "--fields-per-batch",
              "workers-0": "--workers", "seconds": "--seconds", "other-settings": "other settings"}[case]
    if case == "mixed-kinds":
        write_wav(folder / "clip.wav", np.zeros((64, 1), dtype=np.float32), 8000)
    elif case == "empty-folder":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "fields-per-batch-0":
        extra = ["--fields-per-batch", "0"]
    elif case == "workers-0":
        extra = ["--workers", "0"]
    elif case == "seconds":
        extra = ["--seconds", "5"]
    else:
        assert _fit_many_cli(capsys, str(folder), "--out", str(tmp_path / "ds"))[0] == 0
        extra = ["--lr", "0.01"]
    before = sorted(os.listdir(tmp_path))
    code, err = _fit_many_cli(capsys, str(folder), "--out", str(tmp_path / "ds"), *extra)
    assert code == 2 and err.startswith("inrkit: error:") and err.count("\n") == 1 and phrase in err, err
    assert sorted(os.listdir(tmp_path)) == before


def test_worker_processes_give_the_fields_of_one_process(tmp_path: Path) -> None:
    """About 4 s (two worker processes start Python and torch): --workers 2 fits the 2 shards side by side, each worker
    with one thread, into the fields the shards give one after another in this process with one thread."""
    folder = _images(tmp_path / "in", 4)
    apart = inrkit.fit_many(folder, "siren", out=tmp_path / "workers", fields_per_batch=2, workers=2, **TINY)
    together = inrkit.fit_many(folder, "siren", out=tmp_path / "one", fields_per_batch=2, **TINY)
    assert apart.manifest["workers"] == 2 and together.manifest["workers"] == 1
    assert sorted(finished_shards(tmp_path / "workers")) == [0, 1]
    for index in range(4):
        state = apart.field(index).state_dict()
        assert all(torch.equal(state[k], v) for k, v in together.field(index).state_dict().items())
        assert apart[index][1] == together[index][1]


@pytest.mark.slow
def test_a_failing_shard_in_a_worker_is_one_line(tmp_path: Path) -> None:
    """About 4 s: a worker's shard whose source is gone gives the driver its one-line error; the workers are reaped."""
    from inrkit.api.shard_workers import run_in_workers
    from inrkit.errors import InrkitError

    jobs = [{"dir": str(tmp_path), "shard": k, "device": "cpu", "train": {"steps": 2, "lr": 1e-3, "threads": 1},
             "signal_options": {}, "field": {}, "items": [{"id": k, "source": str(tmp_path / f"gone{k}.png"),
                                                          "sha256": "0", "seed": k}]} for k in range(2)]
    with pytest.raises(InrkitError, match="gone") as raised:
        run_in_workers(jobs, lambda result: None, 2)
    assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_a_rerun_resumes(tmp_path: Path) -> None:
    """About 25 s: SIGINT to `inrkit fit-many --workers 2` once a shard is written: exit 130, the written shards kept;
    the same command again fits only the rest."""
    import signal
    import subprocess
    import sys
    import time

    folder = _images(tmp_path / "in", 4)
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "inrkit", "fit-many", str(folder), "--out", str(out), "--width", "8", "--depth",
               "2", "--steps", "3000", "--fields-per-batch", "1", "--workers", "2", "--compile", "off", "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("shard-*.safetensors")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    kept = sorted(finished_shards(out))
    assert process.returncode == 130 and "interrupted" in err and "run the same command again" in err, err
    assert 1 <= len(kept) < 4
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert sorted(finished_shards(out))[:len(kept)] == kept and len(inrkit.load_dataset(out)) == 4


@pytest.mark.slow
def test_compiled_batches_match_the_eager_ones(tmp_path: Path) -> None:
    """About 15 s (compiling): --compile on gives the fields --compile off gives, up to float rounding of fused kernels."""
    folder = _images(tmp_path / "in", 3)
    options = {**TINY, "steps": 20}
    eager = inrkit.fit_many(folder, "siren", out=tmp_path / "eager", **options)
    compiled = inrkit.fit_many(folder, "siren", out=tmp_path / "compiled", **{**options, "compile": "on"})
    for index in range(3):
        state = compiled.field(index).state_dict()
        for name, value in eager.field(index).state_dict().items():
            torch.testing.assert_close(state[name], value, rtol=1e-3, atol=1e-4)
