"""Names, version and attribute keys of the trajstore format.

This module is the single source of truth that ``docs/format.md`` mirrors: every group, array
and attribute name a conforming store uses is defined here once.
"""

from __future__ import annotations

SPEC_NAME = "trajstore"
SPEC_VERSION = "1.2"
SPEC_MAJOR = 1

# Root attributes.
ATTR_SPEC_NAME = "spec_name"
ATTR_SPEC_VERSION = "spec_version"
ATTR_CREATOR = "creator"  # {"program": str, "version": str}
ATTR_CREATED = "created"  # ISO 8601 UTC
ATTR_PROVENANCE = "provenance"  # run provenance, see docs/format.md
ATTR_METADATA = "metadata"  # free-form user metadata
ATTR_GROUPS = "groups"  # (1.1) paths of the time-dependent groups the writer created
ATTR_LOSSY = "lossy"  # null, or {"method": "bitround", "keepbits": int, "groups": [...]}
# (1.1) What the records mean, written by recorders (docs/format.md, sections 3.3-3.5).
ATTR_TRAINABLE = "trainable"  # change points [{"step": int, "trainable": [bool per tensor]}]
ATTR_SEGMENTS = "segments"  # resumes [{"start_step", "start_record", "continuous", "max_abs_gap", ...}]
ATTR_GRADIENT_SOURCE = "gradient_source"  # "update" or "first_closure_evaluation"
ATTR_WEIGHTS_TAKEN = "weights_taken"  # (1.2) "after_step" (default) or "next_step"
# (1.2) the class name of the module owning each layout tensor ("Conv2d"), or null: per-layer analyses
ATTR_TENSOR_MODULES = "tensor_modules"
RECORDING_ATTRS = (
    ATTR_TRAINABLE,
    ATTR_SEGMENTS,
    ATTR_GRADIENT_SOURCE,
    ATTR_TENSOR_MODULES,
    ATTR_WEIGHTS_TAKEN,
)
GRADIENT_SOURCES = ("update", "first_closure_evaluation")
WEIGHTS_TAKEN = ("after_step", "next_step")
ATTR_STORE_ID = "store_id"  # (1.1) UUID given at creation
ATTR_DATASET = "dataset"  # (1.1) title, authors, license, ... (trajstore.description)
ATTR_DERIVED_FROM = "derived_from"  # (1.1) {"store_id", "content_digest", "operation", ...}

# Files beside the data (1.1): the checksum manifest, inside a Zarr folder or zip, or beside HDF5.
MANIFEST_NAME = "trajstore-manifest.json"

# Attributes of every time-dependent group (weights, gradients, buffers, observables/*).
ATTR_N_COMMITTED = "n_committed"  # records [0, n_committed) are complete and valid
ATTR_LAYOUT = "layout"  # list of {"name", "shape", "dtype", "offset", "size"}
ATTR_UNIT = "unit"
ATTR_DESCRIPTION = "description"
ATTR_EVALUATED_AT = "evaluated_at"  # "pre_step" or "post_step" (observables only)
ATTR_INTEGRITY = "integrity"  # (1.1) digests of the committed records, see trajstore.integrity
ATTR_DIMENSION_NAMES = "dimension_names"  # HDF5 only: zarr v3 has it in array metadata

# Groups and arrays.
WEIGHTS = "weights"
GRADIENTS = "gradients"
BUFFERS = "buffers"
OBSERVABLES = "observables"
VECTOR_GROUPS = (WEIGHTS, GRADIENTS, BUFFERS)
VALUE = "value"
STEP = "step"
TIME = "time"

# Dimension names.
DIM_RECORD = "record"
DIM_PARAM = "param"

# Which weights an observable value belongs to.
PRE_STEP = "pre_step"  # value at step s was computed at the weights recorded at step s - 1
POST_STEP = "post_step"  # value at step s was computed at the weights recorded at step s
# (1.1) computed during iteration s after earlier optimizers of the iteration had stepped:
# at weights that no record holds (the second optimizer's loss of a GAN).
WITHIN_STEP = "within_step"
EVALUATED_AT_VALUES = (PRE_STEP, POST_STEP, WITHIN_STEP)

# Codecs a conforming store may use, by backend.
ZARR_CODECS = frozenset({"sharding_indexed", "transpose", "bytes", "blosc", "crc32c", "zstd", "gzip"})
HDF5_FILTERS = frozenset({"shuffle", "gzip", "fletcher32", "blosc", "zstd", None})

# Safety limits: declared sizes above these are refused before anything is allocated.
MAX_PARAMS = 10**11
MAX_RECORDS = 10**10
MAX_TENSORS = 10**6


def parse_version(text: str) -> tuple[int, int]:
    """Return (major, minor) of a version string such as ``"1.0"``; raise ValueError if malformed."""
    parts = str(text).split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"malformed spec version {text!r}")
    return int(parts[0]), int(parts[1])
