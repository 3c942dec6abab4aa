"""The small storage protocol that everything above the backends is written against.

Paths are '/'-separated names relative to the store root ("weights/value"). Arrays are
N-dimensional with an extendable first axis (records).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Compression:
    """How arrays are encoded.

    ``kind``: ``"default"`` (the recommended lossless codec of the backend), ``"none"`` (checksums
    only), ``"no-transpose"`` (Zarr: Blosc without the time-contiguous transpose; a baseline),
    ``"zstd"`` (HDF5: Blosc-zstd through hdf5plugin, readable only where hdf5plugin is installed),
    or a preset of :data:`CODEC_PRESETS` (``"fast"``, ``"balanced"`` = ``"default"``, ``"small"``;
    docs/scale.md gives their measured ratio and speed).
    ``level``: compression level (Blosc/zstd 1-9, deflate 1-9).
    """

    kind: str = "default"
    level: int | None = None

    KINDS = ("default", "none", "no-transpose", "zstd", "fast", "balanced", "small")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown compression {self.kind!r}; choose one of {', '.join(self.KINDS)}")

    @property
    def blosc(self) -> tuple[str, int]:
        """(cname, clevel) of the Blosc codec of a Zarr array: a preset's, ``level`` first."""
        cname, level = CODEC_PRESETS.get(self.kind, CODEC_PRESETS["balanced"])
        return cname, self.level or level

    @property
    def blosc_blocksize(self) -> int:
        """Blosc's block size in bytes for this preset (0: Blosc chooses)."""
        return BLOSC_BLOCKSIZE.get(self._preset, 0)

    @property
    def blosc_shuffle(self) -> str:
        """The Zarr ``blosc`` codec's ``shuffle`` for this preset (``"shuffle"``: byte-shuffle)."""
        return CODEC_SHUFFLE.get(self._preset, CODEC_SHUFFLE["balanced"])

    @property
    def _preset(self) -> str:
        return "balanced" if self.kind == "default" else self.kind


# Lossless presets (Zarr: Blosc over parameter-major chunks, shuffled per CODEC_SHUFFLE; all read
# by plain zarr). HDF5 keeps deflate: "small" raises its level (HDF5_SMALL_LEVEL), the others use
# level 1.
CODEC_PRESETS: dict[str, tuple[str, int]] = {
    "fast": ("lz4", 5),
    "balanced": ("zstd", 1),
    "small": ("zstd", 5),
}
CODEC_PRESET_NAMES = tuple(CODEC_PRESETS)
# Byte-shuffle for the recording presets: on two real trajectories (digits CNNs of 34k and 141k
# parameters) zstd-1 (512 KiB blocks) encoded 1.6-1.7 x and decoded ~2 x as fast as with
# bit-shuffle for a 5 % lower ratio; lz4 1.4-1.5 x and 1.8-2 x for 1-4 %. A recorder must keep up
# with training and an analysis decodes every byte. "small" keeps bit-shuffle, whose ratio is
# what it is for (bench/codec_blocksize.py).
CODEC_SHUFFLE: dict[str, str] = {"fast": "shuffle", "balanced": "shuffle", "small": "bitshuffle"}
# Blosc's own choice for zstd level 1 (small blocks) costs speed for nothing on trajectories: on
# two real ones (digits CNNs of 34k and 141k parameters) 512 KiB blocks encoded 1.24-1.38 x and
# decoded 1.35-1.57 x as fast, at a 1-4 % better ratio (bench/codec_blocksize.py). lz4 and zstd-5
# gained nothing, so they keep Blosc's choice. A chunk smaller than a block is one block.
BLOSC_BLOCKSIZE: dict[str, int] = {"balanced": 512 * 1024}
HDF5_SMALL_LEVEL = 6


class Backend(Protocol):
    """What the writer, reader and validator need from a storage back end."""

    path: str
    readonly: bool

    def exists(self, path: str) -> bool: ...
    def is_array(self, path: str) -> bool: ...
    def create_group(self, path: str) -> None: ...
    def create_array(
        self,
        path: str,
        shape: tuple[int, ...],
        dtype: str,
        chunks: tuple[int, ...],
        shards: tuple[int, ...] | None,
        dims: tuple[str, ...],
        compression: Compression,
    ) -> None: ...
    def shape(self, path: str) -> tuple[int, ...]: ...
    def dtype(self, path: str) -> np.dtype: ...
    def chunks(self, path: str) -> tuple[int, ...]: ...
    def dimension_names(self, path: str) -> tuple[str, ...] | None: ...
    def codec_names(self, path: str) -> list[str]: ...
    def resize(self, path: str, n_records: int) -> None: ...
    def write(self, path: str, start: int, data: np.ndarray) -> None: ...
    def read(self, path: str, selection: Any = ...) -> np.ndarray: ...
    def attrs(self, path: str = "") -> dict: ...
    def set_attrs(self, path: str, values: dict) -> None: ...
    def groups(self, path: str) -> list[str]: ...
    def nbytes_stored(self) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def encode_attr(value: Any) -> Any:
    """HDF5 rule of the spec: objects, arrays and null are stored as their JSON text."""
    if value is None or isinstance(value, (dict, list, tuple)):
        return json.dumps(value, allow_nan=False)
    return value


def decode_attr(value: Any) -> Any:
    """Inverse of :func:`encode_attr` for values read from HDF5."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and (value[:1] in "[{" or value == "null") and value:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
