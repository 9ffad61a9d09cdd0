"""Named presets: a backbone with its paper's defaults, and :class:`ModelOptions` to override them.

Defaults follow each official implementation (REFERENCE.md §1); learning rates are those of the
FINER image protocol (full batch, ×0.1 exponential decay), which is also inrkit's default schedule,
except WIRE: at FINER's 5e-3 it collapses to ~11–22 dB on 64–128 px images within a few hundred
steps, while 1e-3 (the SL²A protocol's WIRE lr) reaches 57 dB on the same 128 px Kodak image.
``depth`` counts hidden layers of width ``width`` (tcnn's ``n_hidden_layers``): the official SIREN
``hidden_layers=3`` network ("3×256", 198,915 parameters for RGB) is ``depth=4``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from inrkit.encodings import nyquist_frequencies
from inrkit.errors import InrkitError
from inrkit.fields.activations import SPDER_DAMPINGS
from inrkit.fields.mlp import MAX_DEPTH, MAX_WIDTH, PERIODIC_OTYPES
from inrkit.fields.resfields import FUSIONS, TIME_MODES


@dataclass
class ModelOptions:
    """Which backbone to build and what to override. ``None`` keeps the preset's default."""

    model: str = field(default="siren", metadata={
        "help": "backbone preset (see `inrkit models`). On a 2-core CPU, hashgrid fits 768x512 photos to ~35 dB in "
                "20 s where the MLPs reach ~20 dB in 30 s, and 7 s of 44.1 kHz audio to SNR 32 dB in 120 s "
                "(SIREN: 10-13 dB)"})
    width: int | None = field(default=None, metadata={"help": "hidden width (WIRE uses floor(width/sqrt 2) complex units)"})
    depth: int | None = field(default=None, metadata={"help": "hidden layers of that width (SIREN 3x256 is depth 4)"})
    omega0: float | None = field(default=None, metadata={"help": "first-layer omega_0 (SIREN/SPDER/FINER/WIRE)"})
    hidden_omega0: float | None = field(default=None, metadata={"help": "hidden-layer omega_0"})
    coordinate_scale: float | None = field(default=None, metadata={
        "help": "models on raw coordinates: the first layer sees s*x for x in [-1, 1] (Identity encoding scale; "
                "default 1; audio with siren/spder: 100, SIREN's t in [-100, 100])"})
    scale: float | None = field(default=None, metadata={"help": "Gauss s / WIRE s0"})
    damping: str | None = field(default=None, metadata={"help": "SPDER damping: sqrt | arctan"})
    first_bias_scale: float | None = field(default=None, metadata={"help": "FINER first-layer bias U(-k, k)"})
    rank: int | None = field(default=None, metadata={"help": "SL2A low-rank fusion rank / ResFields rank"})
    degree: int | None = field(default=None, metadata={"help": "SL2A Chebyshev degree K"})
    n_frequencies: int | None = field(default=None, metadata={"help": "relu-pe octaves (default: Nyquist rule)"})
    sigma: float | None = field(default=None, metadata={"help": "ffn Gaussian Fourier feature scale"})
    n_levels: int | None = field(default=None, metadata={"help": "hash grid: number of levels L"})
    features_per_level: int | None = field(default=None, metadata={"help": "hash grid: features per level F (1, 2, 4, 8)"})
    log2_hashmap_size: int | None = field(default=None, metadata={"help": "hash grid: log2 of the table size T per level"})
    base_resolution: int | None = field(default=None, metadata={"help": "hash grid: coarsest resolution N_min"})
    per_level_scale: float | None = field(default=None, metadata={"help": "hash grid: growth factor b between levels"})
    resfield_layers: str | None = field(default=None, metadata={"help": "ResFields: comma-separated layer indices (1,2,3)"})
    time_mode: str | None = field(default=None, metadata={"help": "ResFields time: interpolation | lookup"})
    fusion: str | None = field(default=None, metadata={"help": "ResFields fusion: add | mul"})
    weight_scale: float | None = field(default=None, metadata={
        "help": "sine networks (siren, spder, finer, resfields, hashgrid-siren): multiply every weight matrix but the "
                "output layer's by this factor at initialisation (Yeom et al. 2025's weight scaling, e.g. 2.5; "
                "default: 1, off)"})


@dataclass(frozen=True)
class Preset:
    """A named backbone: network otype and defaults, encoding, output range, default lr."""

    description: str
    network: dict[str, Any]
    encoding: dict[str, Any]
    output: dict[str, Any]
    lr: float
    options: tuple[str, ...]  # which ModelOptions keys apply (besides width/depth)
    optimizer: dict[str, Any] | None = None  # tcnn optimizer config; None: torch.optim.Adam
    paper_batch_size: int | None = None  # samples per step of the paper protocol; None: full batch (the MLP papers')
    device_batch_size: int = 1 << 11  # random samples per step of the device protocol (measured on 2 CPU cores)
    device_schedule: str = "exp"  # lr schedule of the device protocol (measured on 2 CPU cores)

    def defaults(self, protocol: str) -> dict[str, Any]:
        """``batch_size`` and ``schedule`` of ``protocol`` (``paper`` or ``device``), see ``TrainOptions.protocol``."""
        if protocol == "paper":
            return {"batch_size": self.paper_batch_size, "schedule": "exp"}
        return {"batch_size": self.device_batch_size, "schedule": self.device_schedule}

    @property
    def time_varying(self) -> bool:
        """True when the network needs the signal's frame count (fits time-varying signals only)."""
        return "n_frames" in self.network


SINE_OTYPES = frozenset(PERIODIC_OTYPES)  # the networks --weight-scale applies to
_SIGNED = {"range": [-1.0, 1.0], "activation": "None"}
_UNIT = {"range": [0.0, 1.0], "activation": "None"}
_IDENTITY = {"otype": "Identity"}
# tiny-cuda-nn's image sample config (data/config_hash.json; instant-ngp's own image config uses T 2^24):
# hash grid L16 F2 T2^15 N_min 16 b 1.5, a 64-wide 2-hidden-layer ReLU FullyFusedMLP,
# Adam lr 1e-2 with beta2 0.99, eps 1e-15, L2 1e-6 on the MLP
_HASH_GRID = {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 15,
              "base_resolution": 16, "per_level_scale": 1.5, "interpolation": "Linear"}
_TCNN_ADAM = {"otype": "Adam", "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15, "l2_reg": 1e-6}
_GRID_OPTIONS = ("n_levels", "features_per_level", "log2_hashmap_size", "base_resolution", "per_level_scale")

PRESETS: dict[str, Preset] = {
    "siren": Preset(
        "SIREN: sin(w0(Wx+b)), w0=30, official init",
        {"otype": "Siren", "n_neurons": 256, "n_hidden_layers": 4, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
         "omega_on_bias": True},
        _IDENTITY, _SIGNED, 5e-4, ("omega0", "hidden_omega0"),
    ),
    "spder": Preset(
        "SPDER: sin(z)*sqrt|z|, z=w0(Wx+b), 5 hidden layers as the paper",
        {"otype": "Spder", "n_neurons": 256, "n_hidden_layers": 6, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
         "omega_on_bias": True, "damping": "sqrt"},
        _IDENTITY, _SIGNED, 1e-4, ("omega0", "hidden_omega0", "damping"),
    ),
    "finer": Preset(
        "FINER: sin(w0(|z|+1)z), variable-periodic, SIREN init",
        {"otype": "Finer", "n_neurons": 256, "n_hidden_layers": 4, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
         "first_bias_scale": None},
        _IDENTITY, _SIGNED, 5e-4, ("omega0", "hidden_omega0", "first_bias_scale"),
    ),
    "gauss": Preset(
        "Gaussian activation exp(-(s z)^2), s=30",
        {"otype": "Gauss", "n_neurons": 256, "n_hidden_layers": 4, "scale": 30.0},
        _IDENTITY, _SIGNED, 5e-3, ("scale",),
    ),
    "wire": Preset(
        "WIRE: complex Gabor wavelet, w0=20, s0=10, width/sqrt 2",
        {"otype": "Wire", "n_neurons": 256, "n_hidden_layers": 4, "first_omega_0": 20.0, "hidden_omega_0": 20.0,
         "scale": 10.0},
        _IDENTITY, _SIGNED, 1e-3, ("omega0", "hidden_omega0", "scale"),
    ),
    "relu-pe": Preset(
        "ReLU MLP on NeRF positional encoding (octaves by the Nyquist rule)",
        {"otype": "ReLU", "n_neurons": 256, "n_hidden_layers": 4},
        {"otype": "PositionalEncoding", "n_frequencies": None, "include_input": True, "include_pi": True},
        _UNIT, 1e-3, ("n_frequencies",),
    ),
    "ffn": Preset(
        "ReLU MLP on Gaussian Fourier features (256, sigma=10), sigmoid output",
        {"otype": "ReLU", "n_neurons": 256, "n_hidden_layers": 3},
        {"otype": "GaussianFourier", "n_features": 256, "sigma": 10.0, "seed": 0},
        {"range": [0.0, 1.0], "activation": "Sigmoid"}, 1e-3, ("sigma",),
    ),
    "relu": Preset(
        "plain ReLU MLP on raw coordinates (baseline)",
        {"otype": "ReLU", "n_neurons": 256, "n_hidden_layers": 4},
        _IDENTITY, _UNIT, 1e-3, (),
    ),
    "resfields": Preset(
        "SIREN with ResFields W(t)=W+sum_r v_r(t) M_r in hidden layers 1-3, rank 10 (time-varying signals)",
        {"otype": "ResFieldSiren", "n_neurons": 256, "n_hidden_layers": 4, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
         "omega_on_bias": True, "n_frames": None, "rank": 10, "resfield_layers": [1, 2, 3],
         "time_mode": "interpolation", "fusion": "add", "time_dim": 0},
        _IDENTITY, _SIGNED, 5e-4, ("omega0", "hidden_omega0", "rank", "resfield_layers", "time_mode", "fusion"),
    ),
    "sl2a": Preset(
        "SL2A-INR: Chebyshev first layer (K=256) + low-rank (r=128) ReLU fusion",
        {"otype": "SL2A", "n_neurons": 256, "n_hidden_layers": 4, "degree": 256, "rank": 128},
        _IDENTITY, _UNIT, 1e-3, ("rank", "degree"),
    ),
    "hashgrid": Preset(
        "tiny-cuda-nn image sample (config_hash.json): hash grid L16 F2 T2^15 + 64x2 ReLU FullyFusedMLP, tcnn Adam",
        {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
         "n_hidden_layers": 2},
        _HASH_GRID, _UNIT, 1e-2, _GRID_OPTIONS, _TCNN_ADAM, 1 << 18, 1 << 12, "constant",
    ),
    "hashgrid-siren": Preset(
        "hash grid (as hashgrid) feeding a 64x2 SIREN head (w0=30), tcnn Adam",
        {"otype": "Siren", "n_neurons": 64, "n_hidden_layers": 2, "first_omega_0": 30.0, "hidden_omega_0": 30.0,
         "omega_on_bias": True},
        _HASH_GRID, _SIGNED, 1e-3, ("omega0", "hidden_omega0", *_GRID_OPTIONS), _TCNN_ADAM, 1 << 18, 1 << 12, "constant",
    ),
}

_OPTION_KEYS = {
    "omega0": ("network", "first_omega_0"),
    "hidden_omega0": ("network", "hidden_omega_0"),
    "scale": ("network", "scale"),
    "damping": ("network", "damping"),
    "first_bias_scale": ("network", "first_bias_scale"),
    "rank": ("network", "rank"),
    "degree": ("network", "degree"),
    "n_frequencies": ("encoding", "n_frequencies"),
    "sigma": ("encoding", "sigma"),
    "n_levels": ("encoding", "n_levels"),
    "features_per_level": ("encoding", "n_features_per_level"),
    "log2_hashmap_size": ("encoding", "log2_hashmap_size"),
    "base_resolution": ("encoding", "base_resolution"),
    "per_level_scale": ("encoding", "per_level_scale"),
    "resfield_layers": ("network", "resfield_layers"),
    "time_mode": ("network", "time_mode"),
    "fusion": ("network", "fusion"),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise InrkitError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def _check_positive(config: dict[str, Any]) -> None:
    """Every size and scale must be positive (a zero ω0 or rank would divide by zero later)."""
    checks = {
        "omega0": config["network"].get("first_omega_0"),
        "hidden_omega0": config["network"].get("hidden_omega_0"),
        "scale": config["network"].get("scale"),
        "rank": config["network"].get("rank"),
        "degree": config["network"].get("degree"),
        "n_frequencies": config["encoding"].get("n_frequencies"),
        "sigma": config["encoding"].get("sigma"),
        "coordinate_scale": config["encoding"].get("scale") if config["encoding"].get("otype") == "Identity" else None,
    }
    for key, value in checks.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InrkitError(f"--{key.replace('_', '-')} must be positive, got {value}")


def _parse_layers(text: str) -> list[int]:
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InrkitError(f"--resfield-layers must be comma-separated layer indices such as 1,2,3, got {text!r}") from None
    if not layers:
        raise InrkitError("--resfield-layers must name at least one layer")
    return layers


def _check_resfields(config: dict[str, Any], n_frames: int | None) -> None:
    """Fill in the number of frames and validate the ResFields keys of a ``ResFieldSiren`` network."""
    network = config["network"]
    if network.get("n_frames") is None:
        if n_frames is None:
            raise InrkitError("model resfields needs a time-varying signal (a video): the signal has no frames")
        network["n_frames"] = int(n_frames)
    if isinstance(network["resfield_layers"], str):
        network["resfield_layers"] = _parse_layers(network["resfield_layers"])
    depth = network["n_hidden_layers"]
    outside = [i for i in network["resfield_layers"] if not 0 <= i < depth]
    if outside:
        raise InrkitError(f"--resfield-layers {outside} outside the {depth} hidden layers (0..{depth - 1})")
    if network["time_mode"] not in TIME_MODES:
        raise InrkitError(f"--time-mode must be one of {', '.join(TIME_MODES)}")
    if network["fusion"] not in FUSIONS:
        raise InrkitError(f"--fusion must be one of {', '.join(FUSIONS)}")
    if config["n_input_dims"] < 2:
        raise InrkitError("model resfields needs time plus at least one other coordinate")


def preset_config(
    options: ModelOptions, n_input_dims: int, n_output_dims: int, samples_per_axis: int = 512,
    n_frames: int | None = None,
) -> dict[str, Any]:
    """Field config for ``options.model`` with the overrides applied.

    ``samples_per_axis`` (the signal's largest side) sets relu-pe's octave count by SL²A's rule,
    ``nyquist_frequencies(samples_per_axis // 3)``, when ``n_frequencies`` is not given.
    ``n_frames`` (time-varying signals) sizes the ResFields coefficient table, stored in the config.
    """
    preset = get_preset(options.model)
    config: dict[str, Any] = {
        "n_input_dims": n_input_dims,
        "n_output_dims": n_output_dims,
        "encoding": dict(preset.encoding),
        "network": dict(preset.network),
        "output": dict(preset.output),
    }
    if preset.optimizer is not None:
        config["optimizer"] = dict(preset.optimizer)
    for name, value, most in (("width", options.width, MAX_WIDTH), ("depth", options.depth, MAX_DEPTH)):
        if value is not None and not 1 <= value <= most:
            raise InrkitError(f"--{name} must be an integer in 1..{most}, got {value}")
    if options.width is not None:
        config["network"]["n_neurons"] = options.width
    if options.depth is not None:
        if options.model == "sl2a" and options.depth < 2:
            raise InrkitError("--depth must be at least 2 for sl2a (the Chebyshev layer plus one fusion layer)")
        config["network"]["n_hidden_layers"] = options.depth
    for key, (section, config_key) in _OPTION_KEYS.items():
        value = getattr(options, key)
        if value is None:
            continue
        if key not in preset.options:
            raise InrkitError(f"--{key.replace('_', '-')} does not apply to model {options.model!r}")
        config[section][config_key] = value
    if options.weight_scale is not None:
        if config["network"]["otype"] not in SINE_OTYPES:
            raise InrkitError(f"--weight-scale applies to the sine networks (siren, spder, finer, resfields, "
                              f"hashgrid-siren), not {options.model!r}")
        if not (math.isfinite(options.weight_scale) and 0 < options.weight_scale <= 1e3):
            raise InrkitError(f"--weight-scale must be in (0, 1000], got {options.weight_scale}")
        config["network"]["weight_scale"] = options.weight_scale
    if options.coordinate_scale is not None:
        if config["encoding"].get("otype") != "Identity":
            raise InrkitError(f"--coordinate-scale applies to models on raw coordinates, not {options.model!r} "
                              f"(encoding {config['encoding'].get('otype')})")
        config["encoding"]["scale"] = options.coordinate_scale  # y = s·x (encodings/frequency.py:Identity)
    _check_positive(config)
    if config["network"].get("damping", "sqrt") not in SPDER_DAMPINGS:
        raise InrkitError(f"--damping must be one of {', '.join(SPDER_DAMPINGS)}")
    if config["network"]["otype"] == "ResFieldSiren":
        _check_resfields(config, n_frames)
    if config["encoding"].get("otype") == "PositionalEncoding" and config["encoding"]["n_frequencies"] is None:
        config["encoding"]["n_frequencies"] = nyquist_frequencies(samples_per_axis // 3)
    return config
