"""The report's sections, each an HTML string built from files on disk (nothing is rendered or trained here):
training curves, one section per run (metrics and the signal kind's media), benches, rate–distortion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from inrkit.api.bench_results import DECIBEL_METRICS, BenchResult
from inrkit.api.report import charts, media
from inrkit.api.report.rate_distortion import CODECS, codec_curve, inrz_point
from inrkit.errors import InrkitError
from inrkit.runs import read_config, read_metrics

QUALITY_METRICS = ("psnr", "snr", "iou", "fscore")  # the first one a run records is its curve's y axis
SHOWN_METRICS = ("step", "elapsed", "psnr", "psnr_heldout", "snr", "ssim", "iou", "chamfer_l1", "chamfer_l2",
                 "normal_consistency", "fscore", "loss", "ms_per_step", "peak_memory_mb", "test_views")
PAGE_IMAGE_SIDE = 1024  # a run's own images are shown up to this size (larger ones are shrunk for the page)
GALLERY_SIDE = 256  # bench galleries: thumbnails
GALLERY_SIGNALS = 3  # bench galleries show this many signals
RD_IMAGES = 8  # JPEG/WebP curves are measured on at most this many source images
NERF_VIEWS = 4


@dataclass
class RunView:
    """A run directory as the report reads it: config, evaluation records, kind and name."""

    dir: Path
    name: str
    config: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def kind(self) -> str:
        signal = self.config.get("signal") or {}
        return "nerf" if "scene" in self.config.get("field", {}) else str(signal.get("kind", "unknown"))

    @property
    def model(self) -> str:
        return str((self.config.get("model") or {}).get("model") or (self.config.get("model") or {}).get("preset") or "?")

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def source(self) -> Path | None:
        source = (self.config.get("signal") or {}).get("source")
        return Path(source) if source and Path(source).exists() else None

    @property
    def quality_metric(self) -> str | None:
        return next((m for m in QUALITY_METRICS if any(isinstance(r.get(m), int | float) for r in self.history)), None)


def read_run(path: Path, name: str | None = None) -> RunView:
    """The :class:`RunView` of a run directory (config and metrics only; the weights are not loaded)."""
    return RunView(path, name or path.name, read_config(path), read_metrics(path))


def _series(history: list[dict[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    return [(float(r[x]), float(r[y])) for r in history
            if isinstance(r.get(x), int | float) and isinstance(r.get(y), int | float) and r.get("source") != "inrz"]


def curves_section(runs: list[RunView], title: str = "Training curves", anchor: str = "curves") -> str:
    """PSNR (or the run's quality metric), loss and lr against step and against seconds, all runs overlaid."""
    metric = next((m for m in QUALITY_METRICS if any(r.quality_metric == m for r in runs)), None)
    charts_html = []
    if metric:
        label = metric.upper() + (" (dB)" if metric in DECIBEL_METRICS else "")
        charts_html += [charts.line_chart([charts.Series(r.name, _series(r.history, x, metric)) for r in runs],
                                          f"{metric} vs {name}", name, label) for x, name in
                        (("step", "step"), ("elapsed", "seconds"))]
    charts_html += [charts.line_chart([charts.Series(r.name, _series(r.history, "step", y)) for r in runs],
                                      f"{y} vs step", "step", y, log_y=True) for y in ("loss", "lr")]
    charts_html.append(charts.line_chart([charts.Series(r.name, _series(r.history, "elapsed", "loss")) for r in runs],
                                         "loss vs seconds", "seconds", "loss", log_y=True))
    return (f'<section id="{anchor}" class="curves"><h2>{escape(title)}</h2>'
            f'<div class="charts">{"".join(charts_html)}</div></section>')


def _metrics_table(record: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{_format(record[k])}</td></tr>" for k in SHOWN_METRICS if k in record)
    return f'<table class="metrics">{cells}</table>' if cells else "<p>no evaluation yet</p>"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return escape(str(value))


def zoom_group(panes: list[tuple[str, str | None]], note: str = "") -> str:
    """Side-by-side images whose zoom and pan are synchronised (wheel to zoom, drag to pan, double-click to reset)."""
    figures = "".join(
        f'<figure class="zoom-pane"><div class="zoom-view"><img alt="{escape(caption)}" src="{uri}"></div>'
        f"<figcaption>{escape(caption)}</figcaption></figure>" if uri else
        f'<figure class="zoom-pane missing"><div class="zoom-view"></div><figcaption>{escape(caption)} '
        "(not available)</figcaption></figure>" for caption, uri in panes)
    hint = "wheel: zoom, drag: pan, double-click: reset (all panes together)"
    return f'<div class="zoom-group">{figures}</div><p class="hint">{escape(note + " " if note else "")}{hint}</p>'


def _first(folder: Path, stem: str) -> Path | None:
    return next(iter(sorted(folder.glob(f"{stem}.*"))), None)


def image_media(run: RunView, side: int = PAGE_IMAGE_SIDE) -> str:
    """Target, reconstruction and error map in one synchronised zoom group."""
    reconstruction = _first(run.dir, "reconstruction")
    panes = [("target", media.image_uri(run.source, side) if run.source else None),
             ("reconstruction", media.image_uri(reconstruction, side) if reconstruction else None),
             ("error ×10", media.image_uri(run.dir / "error.png", side))]
    return f'<div class="media image">{zoom_group(panes)}</div>'


def audio_media(run: RunView) -> str:
    """Audio players for the target clip and the reconstruction."""
    players = []
    for caption, path in (("target", run.source), ("reconstruction", run.dir / "reconstruction.wav")):
        uri = media.file_uri(path) if path else None
        players.append(f'<figure><audio controls preload="none" src="{uri}"></audio><figcaption>{caption}</figcaption>'
                       "</figure>" if uri else f"<p>{caption}: not available</p>")
    return f'<div class="media audio">{"".join(players)}</div>'


def video_media(run: RunView) -> str:
    """Video elements for the reconstruction (and the target when it is an MP4)."""
    items = []
    sources = [("target", run.source if run.source and run.source.suffix.lower() == ".mp4" else None),
               ("reconstruction", run.dir / "reconstruction.mp4")]
    for caption, path in sources:
        uri = media.file_uri(path) if path else None
        if uri:
            items.append(f'<figure><video controls muted loop playsinline preload="metadata" src="{uri}"></video>'
                         f"<figcaption>{caption}</figcaption></figure>")
    return f'<div class="media video">{"".join(items) or "<p>no video written yet</p>"}</div>'


def mesh_viewer(caption: str, path: Path | None) -> str:
    """A canvas for the report's mesh viewer, the mesh inlined as base64 arrays."""
    payload = media.mesh_payload(path) if path and path.is_file() else None
    if payload is None:
        return f"<p>{escape(caption)}: not available</p>"
    note = f"{payload['n_faces']:,} faces" + (" (simplified for the page)" if payload["n_faces"] > media.MAX_MESH_FACES else "")
    data = escape(json.dumps(payload), quote=False)
    return (f'<figure class="mesh-view"><canvas width="360" height="320"></canvas>'
            f'<script type="application/json" class="mesh-data">{data}</script>'
            f"<figcaption>{escape(caption)}: {note}; drag to turn, wheel to zoom</figcaption></figure>")


def sdf_media(run: RunView) -> str:
    """The fitted surface (``mesh.ply``) beside the input mesh, in interactive 3-D views."""
    return (f'<div class="media mesh">{mesh_viewer("fitted surface", run.dir / "mesh.ply")}'
            f"{mesh_viewer('input', run.source)}</div>")


def nerf_media(run: RunView) -> str:
    """Test-view renders and depth maps (synchronised zoom) and the turntable video when one was rendered."""
    renders = run.dir / "renders"
    panes = []
    for index in range(NERF_VIEWS):
        colour = renders / f"test_{index:03d}.png"
        if colour.is_file():
            panes += [(f"test view {index}", media.image_uri(colour)),
                      (f"depth {index}", media.image_uri(renders / f"depth_{index:03d}.png"))]
    parts = [zoom_group(panes) if panes else "<p>no test renders yet</p>"]
    turntable = next((p for p in (run.dir / "turntable.mp4", run.dir / "turntable.gif") if p.is_file()), None)
    uri = media.file_uri(turntable) if turntable else None
    if uri and turntable.suffix == ".mp4":
        parts.append(f'<figure class="turntable"><video controls muted loop autoplay playsinline src="{uri}"></video>'
                     "<figcaption>turntable</figcaption></figure>")
    elif uri:
        parts.append(f'<figure class="turntable"><img alt="turntable" src="{uri}"><figcaption>turntable</figcaption></figure>')
    else:
        parts.append(f"<p>no turntable: <code>inrkit render {escape(str(run.dir))} --turntable "
                     f"{escape(str(run.dir / 'turntable.mp4'))}</code> writes one</p>")
    return f'<div class="media nerf">{"".join(parts)}</div>'


KIND_MEDIA = {"image": image_media, "audio": audio_media, "video": video_media, "sdf": sdf_media, "nerf": nerf_media}


def run_section(run: RunView, anchor: str) -> str:
    """One run: what was fitted, its final metrics, and the media of its kind."""
    train = run.config.get("train") or {}
    summary = (f"{escape(run.kind)} · model <b>{escape(run.model)}</b> · lr {train.get('lr', '?')} · "
               f"schedule {escape(str(train.get('schedule', '?')))} · batch {train.get('batch_size') or 'full'} · "
               f"source <code>{escape(str((run.config.get('signal') or {}).get('source', '?')))}</code>")
    body = KIND_MEDIA.get(run.kind, lambda r: "")(run)
    return (f'<section id="{anchor}" class="run kind-{escape(run.kind)}"><h2>{escape(run.name)}</h2>'
            f'<p class="summary">{summary}</p><div class="run-body">{_metrics_table(run.final)}{body}</div></section>')


def gap_class(gap: float | None, metric: str) -> str:
    """``good`` (within 0.5 dB below, or above), ``near`` (within 2 dB), ``far``; IoU-like metrics: 0.005 / 0.02."""
    if gap is None:
        return "none"
    near, far = (0.5, 2.0) if metric in DECIBEL_METRICS else (0.005, 0.02)
    return "good" if gap >= -near else "near" if gap >= -far else "far"


def bench_table_html(result: BenchResult) -> str:
    """The bench table with the published numbers and colour-coded differences."""
    protocol, metric = result.protocol, result.protocol.metric
    head = result.columns()
    rows = []
    for row in result.rows():
        *cells, gap = [escape(text) for text in result.row_text(row, _format)]
        cells.append(f'<span class="gap gap-{gap_class(row["gap"], metric)}">{gap}</span>')
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    sources = "".join(f"<li>[{escape(k)}] {escape(v)}</li>" for k, v in protocol.published.get("sources", {}).items())
    problems = "".join(f"<li>{escape(p)}</li>" for p in result.problems())
    return (f'<table class="bench"><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr>{"".join(rows)}</table>'
            f'<ul class="sources">{sources}</ul>'
            '<p class="legend-gaps"><span class="gap gap-good">within 0.5 dB or above</span> '
            '<span class="gap gap-near">0.5–2 dB below</span> <span class="gap gap-far">more than 2 dB below</span> '
            "(IoU: 0.005 / 0.02); * published mean over the protocol's whole set</p>"
            + (f'<details open><summary>cells not done</summary><ul class="problems">{problems}</ul></details>'
               if problems else ""))


def _mean_history(runs: list[RunView], label: str) -> RunView:
    """A pseudo-run whose records are the means over ``runs`` at each step every run has."""
    steps = set.intersection(*({r["step"] for r in run.history if "step" in r} for run in runs)) if runs else set()
    history = []
    for step in sorted(steps):
        records = [next(r for r in run.history if r.get("step") == step) for run in runs]
        history.append({k: float(np.mean([r[k] for r in records])) for k in records[0]
                        if all(isinstance(r.get(k), int | float) for r in records)})
    return RunView(runs[0].dir if runs else Path("."), label, {}, history)


def bench_section(result: BenchResult, anchor: str) -> tuple[str, list[RunView]]:
    """Table, mean curves per model, and a gallery of the first signals' reconstructions; also returns the cells'
    runs (for the rate–distortion section)."""
    protocol = result.protocol
    runs: dict[str, list[RunView]] = {}
    for cell in result.cells:
        record = result.records.get(cell.key, {})
        if record.get("status") == "done" and (cell.dir / "config.json").is_file():
            try:
                runs.setdefault(cell.label, []).append(read_run(cell.dir, cell.key))
            except InrkitError:
                continue
    means = [_mean_history(cell_runs, label) for label, cell_runs in runs.items()]
    parts = [f'<section id="{anchor}" class="bench"><h2>bench {escape(protocol.name)} v{protocol.version} '
             f'({escape(protocol.scale)} scale)</h2><p class="summary">{escape(protocol.title)}'
             + (f"<br>scale {escape(protocol.scale)}: {escape(protocol.factors)}" if protocol.factors else "")
             + (f"<br>{escape(protocol.notes)}" if protocol.notes else "") + "</p>", bench_table_html(result)]
    if means:
        parts.append(curves_section(means, "mean curves per model", f"{anchor}-curves"))
    signals = sorted({run.dir.name for cell_runs in runs.values() for run in cell_runs})[:GALLERY_SIGNALS]
    for signal in signals:
        cell_runs = [(label, next((r for r in cell_runs if r.dir.name == signal), None)) for label, cell_runs in runs.items()]
        source = next((r.source for _, r in cell_runs if r is not None and r.source), None)
        panes = [("target", media.image_uri(source, GALLERY_SIDE) if source else None)]
        for label, run in cell_runs:
            if run is not None and run.kind == "image":
                reconstruction = _first(run.dir, "reconstruction")
                value = run.final.get(protocol.metric)
                caption = f"{label}" + (f" {value:.2f}" if isinstance(value, float) else "")
                panes.append((caption, media.image_uri(reconstruction, GALLERY_SIDE) if reconstruction else None))
        if len(panes) > 1 and any(r is not None and r.kind == "image" for _, r in cell_runs):
            parts.append(f'<h3>signal {escape(signal)}</h3><div class="gallery">{zoom_group(panes)}</div>')
    parts.append("</section>")
    return "".join(parts), [run for cell_runs in runs.values() for run in cell_runs]


def rd_section(inrz_files: list[Path], runs: list[RunView], results: list[BenchResult]) -> str:
    """``.inrz`` points (files given, and the benches' compressed cells) against JPEG and WebP on the same images,
    with the protocols' published points."""
    series: list[charts.Series] = []
    points, sources = [], []
    for path in inrz_files:
        point = inrz_point(path)
        if point:
            points.append((point["bpp"], point["psnr"]))
            owner = path.parent if (path.parent / "config.json").is_file() else None
            if owner is not None:
                sources.append(read_run(owner).source)
    if points:
        series.append(charts.Series(".inrz files", sorted(points), markers_only=True))
    for result in results:
        for index, options in enumerate(result.protocol.compress):
            cell_points = [(r["compressed"][index]["bpp"], r["compressed"][index]["psnr"]) for r in result.records.values()
                           if r.get("status") == "done" and len(r.get("compressed", ())) > index
                           and isinstance(r["compressed"][index].get("psnr"), int | float)]
            if cell_points:
                series.append(charts.Series(f"{result.protocol.name} @{options.get('bits', 8)} bits",
                                            cell_points, markers_only=True))
        sources += [r.source for r in runs if r.kind == "image"]
        for name, entry in result.protocol.published.get("rd", {}).items():
            series.append(charts.Series(name, [tuple(p) for p in entry["points"]], dashed=True))
    if not series:
        return ""
    images = _rd_images([s for s in sources if s is not None])
    note = "no source images found for JPEG/WebP curves"
    if images:
        for codec in CODECS:
            series.append(charts.Series(f"{codec} (Pillow, same {len(images)} image{'s' * (len(images) > 1)})",
                                        codec_curve(images, codec)))
        note = f"JPEG and WebP measured here on {len(images)} source image(s), mean bpp and PSNR per quality setting"
    chart = charts.line_chart(series, "rate–distortion", "bits per pixel", "PSNR (dB)", width=620, height=360)
    return f'<section id="rate-distortion" class="rd"><h2>Rate–distortion</h2>{chart}<p class="hint">{escape(note)}</p></section>'


def _rd_images(paths: list[Path]) -> list[np.ndarray]:
    """Up to :data:`RD_IMAGES` distinct source images as 8-bit RGB (unreadable ones are skipped)."""
    from inrkit.io.images import read_image

    images = []
    for path in dict.fromkeys(paths):
        if len(images) >= RD_IMAGES:
            break
        try:
            pixels = media.to_uint8(read_image(path))
        except (InrkitError, OSError):
            continue
        images.append(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3])
    return images

