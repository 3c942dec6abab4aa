"""Editing a finished store's description and metadata without touching its data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import spec
from .backends import open_backend
from .description import merged
from .errors import TrajstoreError
from .reader import check_header


def annotate(
    path: str | os.PathLike,
    dataset: Mapping[str, Any] | None = None,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge ``dataset`` fields (a ``None`` value removes one) into the store's description and
    ``metadata`` keys into its free-form metadata; return the new description.

    Only root attributes change: no chunk is rewritten, so the content digest stays the same.
    Refused on a store another process is writing, on packages (``.zip``) and on remote URLs.
    """
    path = os.fspath(path)
    if "://" in path or path.lower().endswith(".zip"):
        raise TrajstoreError(
            f"{path}: annotate edits a local store in place; annotate the directory or .h5 store "
            "before you pack or push it"
        )
    backend = open_backend(path, "r+")  # takes the writer's lock: refused while another writes
    try:
        attrs = check_header(backend, path)
        description = merged(attrs.get(spec.ATTR_DATASET), dataset or {})
        updates: dict[str, Any] = {spec.ATTR_DATASET: description}
        if metadata:
            updates[spec.ATTR_METADATA] = {**(attrs.get(spec.ATTR_METADATA) or {}), **dict(metadata)}
        if attrs.get(spec.ATTR_STORE_ID) is None:
            import uuid

            updates[spec.ATTR_STORE_ID] = str(uuid.uuid4())
        backend.set_attrs("", updates)
        backend.flush()
    finally:
        backend.close()
    return description
