"""WAV reading and writing through libsndfile (``soundfile``), with the checks libsndfile skips.

Samples are ``(n, channels)`` float32 in the file's own scale: integer PCM is mapped to [-1, 1)
(``int / 2^(bits−1)``, 8-bit unsigned centred first), float files keep their values. Supported
encodings: 8-bit unsigned, 16/24/32-bit signed integer, 32/64-bit float, any rate and channel count.

libsndfile reads a WAV whose ``data`` chunk is cut short without complaint (it just returns fewer
frames); :func:`check_riff` compares the declared chunk sizes with the file size first, so a
truncated download is refused instead of silently fitted.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError
from inrkit.files import atomic_write_bytes

AUDIO_SUFFIXES = (".wav", ".wave")

# libsndfile subtype -> human name; the integer and float PCM encodings inrkit reads and writes.
# Integer PCM is quantised here (round to nearest, clip) and handed to libsndfile as int16/int32
# words, whose low bits it drops exactly: libsndfile's own float -> 8-bit conversion truncates.
WAV_SUBTYPES = {
    "PCM_U8": "8-bit unsigned integer",
    "PCM_16": "16-bit integer",
    "PCM_24": "24-bit integer",
    "PCM_32": "32-bit integer",
    "FLOAT": "32-bit float",
    "DOUBLE": "64-bit float",
}


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says: sample rate, channel count, frame count and libsndfile subtype."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str


def check_riff(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose chunks run past its end (a truncated file).

    Walks the chunk list ``(id: 4 bytes, size: uint32 LE, payload padded to even length)`` and
    checks that the ``data`` chunk's declared size fits in the file. RF64 files (size field
    0xFFFFFFFF) are left to libsndfile.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            raise InrkitError(f"cannot read {path}: not a WAV file (no RIFF/WAVE header)")
        if header[:4] == b"RF64":
            return
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                if chunk_size != 0xFFFFFFFF and offset + 8 + chunk_size > size:
                    have = size - offset - 8
                    raise InrkitError(
                        f"cannot read {path}: truncated WAV file (the data chunk declares {chunk_size:,} bytes, "
                        f"the file holds {have:,})"
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)
    raise InrkitError(f"cannot read {path}: WAV file has no data chunk (truncated or corrupt)")


def wav_info(path: Path) -> WavInfo:
    """Header of a WAV file, refusing truncated files and encodings outside :data:`WAV_SUBTYPES`."""
    import soundfile

    check_riff(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise InrkitError(f"cannot read {path}: corrupt or unsupported WAV file ({_first_line(err)})") from None
    if info.subtype not in WAV_SUBTYPES:
        known = ", ".join(WAV_SUBTYPES.values())
        raise InrkitError(f"cannot read {path}: unsupported audio encoding {info.subtype_info!r}; inrkit reads {known} WAV")
    return WavInfo(int(info.samplerate), int(info.channels), int(info.frames), info.subtype)


def read_wav(path: Path) -> tuple[np.ndarray, WavInfo]:
    """``(samples (n, channels) float32, info)``; integer PCM scaled to [-1, 1)."""
    import soundfile

    info = wav_info(path)
    try:
        samples, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise InrkitError(f"cannot read {path}: corrupt WAV file ({_first_line(err)})") from None
    if samples.shape[0] != info.frames:
        raise InrkitError(f"cannot read {path}: corrupt WAV file (header says {info.frames} frames, read {samples.shape[0]})")
    return samples, info


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write ``samples (n, channels)`` (float, file scale) as a WAV of ``subtype``, atomically.

    Integer subtypes are rounded to the nearest step of ``2^-(bits-1)`` and clipped to the range.
    """
    import soundfile

    if subtype not in WAV_SUBTYPES:
        raise InrkitError(f"cannot write WAV encoding {subtype!r}; choose one of {', '.join(WAV_SUBTYPES)}")
    if sample_rate < 1:
        raise InrkitError(f"sample rate must be positive, got {sample_rate}")
    data = np.asarray(samples, dtype=np.float64)
    if subtype.startswith("PCM"):
        data = quantise(data, subtype)
    elif subtype == "FLOAT":
        data = data.astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, data, int(sample_rate), subtype=subtype, format="WAV")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


_PCM_BITS = {"PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


def quantise(samples: np.ndarray, subtype: str) -> np.ndarray:
    """[-1, 1) floats to the integer words libsndfile writes exactly: int16 for 8/16-bit, int32 for 24/32-bit.

    ``k = clip(round(x·2^(bits−1)), −2^(bits−1), 2^(bits−1) − 1)``, shifted to the top of the word.
    """
    bits = _PCM_BITS[subtype]
    top = 2.0 ** (bits - 1)
    steps = np.clip(np.round(np.asarray(samples, dtype=np.float64) * top), -top, top - 1).astype(np.int64)
    word = 16 if bits <= 16 else 32
    return (steps << (word - bits)).astype(np.int16 if word == 16 else np.int32)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
