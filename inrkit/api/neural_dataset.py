"""Neural datasets on disk: many fitted fields of one architecture in one directory, and how to read them back.

A dataset directory holds::

    dataset.json              architecture (``field``), model and training options, initialisation, the items
                              (source path, sha256 of the source, seed, signal config, shard and row, metrics),
                              the skipped inputs and why
    shard-00000.safetensors   the weights of up to ``fields_per_batch`` items: every tensor of the field stacked,
    shard-00001.safetensors   ``(n_items, *shape)``; metadata ``items`` (JSON: id, source, sha256, seed, metrics per row)
    init.safetensors          the shared or meta-learned initialisation (``--init shared|meta``)

Each shard file is written atomically once its fields are trained and is self-describing (its metadata names its
items), so the shard files are the source of truth for what is finished: a resume reads them, never refits
their items, and fits the rest into new shards. ``dataset.json`` is rewritten after every shard.

Example:
    >>> data = inrkit.load_dataset("kodak-tiles")                    # doctest: +SKIP
    >>> params, metrics, item = data[0]                              # flat (n_params,) vector, dict, int
    >>> field = data.field(0)                                        # a normal Field
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from inrkit.errors import InrkitError
from inrkit.fields import Field, field_from_config
from inrkit.files import atomic_write_bytes, read_json, write_json

DATASET_FILE = "dataset.json"
INIT_FILE = "init.safetensors"
FORMAT = "inrkit-dataset"
FORMAT_VERSION = 1
SHARD_PATTERN = re.compile(r"^shard-(\d{5,})\.safetensors$")


def shard_name(index: int) -> str:
    """``shard-00007.safetensors`` for shard 7."""
    return f"shard-{index:05d}.safetensors"


def is_dataset(path: str | Path) -> bool:
    """True when ``path`` is a directory holding a ``dataset.json``."""
    return (Path(path) / DATASET_FILE).is_file()


def write_shard(path: Path, state: dict[str, torch.Tensor], items: list[dict[str, Any]]) -> None:
    """Write stacked weights ``state`` (each ``(len(items), *shape)``) and the rows' ``items`` records, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata={"format": FORMAT, "items": json.dumps(items)}))


def read_shard_items(path: Path) -> list[dict[str, Any]] | None:
    """The item records of a shard file, or None when it is not a readable shard (a stray or damaged file)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        items = json.loads(metadata.get("items", "null"))
    except Exception:
        return None
    return items if isinstance(items, list) and all(isinstance(i, dict) for i in items) else None


def finished_shards(directory: Path) -> dict[int, list[dict[str, Any]]]:
    """``{shard index: item records}`` of every readable shard file in ``directory``."""
    found = {}
    for path in sorted(directory.glob("shard-*.safetensors")):
        match = SHARD_PATTERN.match(path.name)
        items = read_shard_items(path) if match else None
        if match and items is not None:
            found[int(match.group(1))] = items
    return found


def save_init(directory: Path, state: dict[str, torch.Tensor]) -> None:
    """The shared or meta-learned initialisation (a field's ``state_dict``), atomically."""
    atomic_write_bytes(directory / INIT_FILE, safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in state.items()}))


def load_init(directory: Path) -> dict[str, torch.Tensor]:
    """The initialisation saved by :func:`save_init`."""
    path = Path(directory) / INIT_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except FileNotFoundError:
        raise InrkitError(f"{directory} has no saved initialisation ({INIT_FILE})") from None
    except Exception as err:
        raise InrkitError(f"cannot read {path}: {err}") from None


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Rewrite ``dataset.json`` atomically."""
    write_json(Path(directory) / DATASET_FILE, manifest)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``dataset.json``, checked to be an inrkit dataset; one line when it is not."""
    path = Path(directory) / DATASET_FILE
    if not path.is_file():
        raise InrkitError(f"cannot load {directory}: not an inrkit dataset (no {DATASET_FILE})")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as err:
        raise InrkitError(f"cannot load {directory}: invalid {DATASET_FILE} ({err})") from None
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT and isinstance(manifest.get("field"), dict)
            and isinstance(manifest.get("items"), list)):
        raise InrkitError(f"cannot load {directory}: {DATASET_FILE} is not an inrkit dataset manifest")
    return manifest


def _real(tensor: torch.Tensor) -> torch.Tensor:
    """float32 values; a complex tensor (WIRE) as its (real, imaginary) pairs."""
    return torch.view_as_real(tensor).float() if tensor.is_complex() else tensor.float()


class NeuralDataset(torch.utils.data.Dataset):
    """The fitted items of a dataset directory as a ``torch.utils.data.Dataset``.

    ``dataset[i]`` is ``(params, metrics, item_id)``: ``params`` the field's parameters as one flat float32
    vector ``(n_params,)`` in ``named_parameters`` order (a complex parameter as real and imaginary pairs;
    ``flat=False``: a dict of tensors by name), ``metrics`` the
    item's final metrics, ``item_id`` its index in ``dataset.json``'s ``items``. Items that were skipped or are
    not fitted yet are left out. :meth:`field` gives item ``i`` as a normal :class:`Field`.
    """

    def __init__(self, directory: str | Path, flat: bool = True) -> None:
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        self.config = self.manifest["field"]
        self.flat = flat
        self.items = [item for item in self.manifest["items"] if item.get("shard") is not None]
        self._shards: dict[str, dict[str, torch.Tensor]] = {}
        self._template = field_from_config(self.config)

    def __len__(self) -> int:
        return len(self.items)

    def _tensors(self, item: dict[str, Any]) -> dict[str, torch.Tensor]:
        name = shard_name(int(item["shard"]))
        if name not in self._shards:
            try:
                with safe_open(str(self.dir / name), framework="pt") as handle:
                    self._shards[name] = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
            except Exception as err:
                raise InrkitError(f"cannot read {self.dir / name}: {err}") from None
        row = int(item["row"])
        return {k: v[row] for k, v in self._shards[name].items()}

    def state(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index``'s ``state_dict``."""
        return self._tensors(self.items[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor | dict[str, torch.Tensor], dict[str, Any], int]:
        item = self.items[index]
        state = self._tensors(item)
        if self.flat:
            names = [name for name, _ in self._template.named_parameters()]
            params: torch.Tensor | dict[str, torch.Tensor] = torch.cat([_real(state[n]).reshape(-1) for n in names])
        else:
            params = state
        return params, dict(item.get("metrics") or {}), int(item["id"])

    def field(self, index: int) -> Field:
        """Item ``index`` as a :class:`Field` (eval mode) with its weights."""
        field = field_from_config(self.config)
        try:
            field.load_state_dict(self.state(index), strict=True)
        except RuntimeError as err:
            raise InrkitError(f"the weights of item {index} in {self.dir} do not match its field config: "
                              f"{str(err).splitlines()[0]}") from None
        return field.eval()

    def run_config(self, index: int) -> dict[str, Any]:
        """A run-style config of item ``index`` (``field``, ``signal``, ``model``, ``train``) for renders and codecs."""
        item = self.items[index]
        return {"inrkit_version": self.manifest.get("inrkit_version"), "field": self.config, "signal": item["signal"],
                "model": self.manifest.get("model", {}),
                "train": {**self.manifest.get("train", {}), "seed": item.get("seed")}}


def load_dataset(directory: str | Path, flat: bool = True) -> NeuralDataset:
    """Open a dataset directory written by ``inrkit fit-many`` (:class:`NeuralDataset`)."""
    return NeuralDataset(directory, flat)


def split_item(path: str | Path) -> tuple[Path, int] | None:
    """``("DIR", i)`` for an item reference ``DIR#i`` to a dataset directory, else None."""
    text = str(path)
    head, sep, tail = text.rpartition("#")
    if not sep or not tail.isdigit() or not is_dataset(head):
        return None
    return Path(head), int(tail)
