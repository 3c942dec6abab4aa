"""The parameter layout: where each named tensor lives in the flat parameter vector."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from . import spec
from .errors import LayoutError


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the layout.

    ``flat[offset:offset + size]`` reshaped to ``shape`` (C order) is the tensor.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int

    @property
    def size(self) -> int:
        """Number of elements (1 for a scalar tensor of shape ``()``)."""
        return math.prod(self.shape)

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "offset": self.offset,
            "size": self.size,
        }


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


class Layout:
    """An ordered, contiguous partition of a flat vector of ``n_params`` into named tensors."""

    def __init__(self, tensors: Iterable[TensorSpec]):
        self.tensors: tuple[TensorSpec, ...] = tuple(tensors)
        self._by_name = {t.name: t for t in self.tensors}
        self._check()

    def _check(self) -> None:
        if len(self.tensors) > spec.MAX_TENSORS:
            raise LayoutError(f"layout has {len(self.tensors)} tensors, more than the limit")
        if len(self._by_name) != len(self.tensors):
            names = [t.name for t in self.tensors]
            dup = next(n for n in names if names.count(n) > 1)
            raise LayoutError(f"layout names tensor {dup!r} twice; tensor names must be unique")
        expected = 0
        for t in self.tensors:
            if any((not isinstance(d, int)) or d < 0 for d in t.shape):
                raise LayoutError(f"tensor {t.name!r} has an invalid shape {t.shape}")
            if t.offset != expected:
                raise LayoutError(
                    f"tensor {t.name!r} starts at offset {t.offset}, expected {expected}: "
                    "tensors must be contiguous and in order"
                )
            expected = t.stop
        if expected > spec.MAX_PARAMS:
            raise LayoutError(f"layout declares {expected} parameters, more than the limit")

    @classmethod
    def from_params(cls, params: int | Mapping[str, Iterable[int]], dtype: str = "float32") -> Layout:
        """Build a layout from a count (one tensor named ``"flat"``) or a name → shape mapping."""
        if isinstance(params, (int, np.integer)):
            if params < 1:
                raise LayoutError(f"parameter count must be positive, got {params}")
            return cls([TensorSpec("flat", (int(params),), dtype, 0)])
        if not isinstance(params, Mapping) or not params:
            raise LayoutError("params must be a positive count or a non-empty mapping name -> shape")
        tensors, offset = [], 0
        for name, shape in params.items():
            shp = tuple(int(d) for d in (shape if isinstance(shape, Iterable) else (shape,)))
            tensors.append(TensorSpec(str(name), shp, dtype, offset))
            offset += math.prod(shp)
        if offset < 1:
            raise LayoutError("the layout holds no parameters: every tensor is empty")
        return cls(tensors)

    @classmethod
    def from_json(cls, entries: object) -> Layout:
        """Parse the ``layout`` attribute of a store, checking every field before use."""
        if not isinstance(entries, list) or not entries:
            raise LayoutError("the layout attribute must be a non-empty list of tensors")
        if len(entries) > spec.MAX_TENSORS:
            raise LayoutError(f"layout has {len(entries)} tensors, more than the limit {spec.MAX_TENSORS}")
        tensors = []
        for i, e in enumerate(entries):
            # Exact JSON types: a shape of [10.5, 15] or "150" is an error, never coerced.
            if not isinstance(e, dict):
                raise LayoutError(f"layout entry {i} is not an object")
            name, shape, offset = e.get("name"), e.get("shape"), e.get("offset")
            dtype = e.get("dtype", "float32")
            if not isinstance(name, str) or not name:
                raise LayoutError(f"layout entry {i}: name {name!r} is not a non-empty string")
            if not isinstance(shape, list) or not all(_is_count(d) for d in shape) or len(shape) > 64:
                raise LayoutError(
                    f"layout entry {name!r}: shape {shape!r} is not a list of non-negative integers"
                )
            if not _is_count(offset):
                raise LayoutError(f"layout entry {name!r}: offset {offset!r} is not a non-negative integer")
            if not isinstance(dtype, str):
                raise LayoutError(f"layout entry {name!r}: dtype {dtype!r} is not a string")
            if any(d > spec.MAX_PARAMS for d in shape) or offset > spec.MAX_PARAMS:
                raise LayoutError(f"layout entry {name!r} declares more than {spec.MAX_PARAMS} parameters")
            t = TensorSpec(name, tuple(shape), dtype, offset)
            if t.size > spec.MAX_PARAMS:
                raise LayoutError(f"layout entry {name!r} declares more than {spec.MAX_PARAMS} parameters")
            if "size" in e and (not _is_count(e["size"]) or e["size"] != t.size):
                raise LayoutError(f"layout entry {name!r} says size {e['size']!r}, shape gives {t.size}")
            tensors.append(t)
        return cls(tensors)

    def to_json(self) -> list[dict]:
        return [t.to_dict() for t in self.tensors]

    @property
    def n_params(self) -> int:
        return self.tensors[-1].stop if self.tensors else 0

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tensors]

    def __getitem__(self, name: str) -> TensorSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r}; tensors: {', '.join(self.names)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[TensorSpec]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and [(t.name, t.shape, t.offset) for t in self.tensors] == [
            (t.name, t.shape, t.offset) for t in other.tensors
        ]

    def __hash__(self) -> int:
        return hash(tuple((t.name, t.shape) for t in self.tensors))

    def __repr__(self) -> str:
        return f"Layout({len(self)} tensors, {self.n_params} parameters)"

    def unflatten(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Split ``flat`` of shape (..., n_params) into views of shape (..., *tensor.shape)."""
        lead = flat.shape[:-1]
        return {t.name: flat[..., t.offset : t.stop].reshape(lead + t.shape) for t in self.tensors}

    def flatten(self, tensors: Mapping[str, np.ndarray], dtype: str = "float32") -> np.ndarray:
        """Concatenate named arrays in layout order into one vector of shape (n_params,)."""
        out = np.empty(self.n_params, dtype=dtype)
        for t in self.tensors:
            a = np.asarray(tensors[t.name])
            if a.size != t.size:
                raise LayoutError(f"tensor {t.name!r} has {a.size} elements, layout says {t.size}")
            out[t.offset : t.stop] = a.reshape(-1)
        return out
