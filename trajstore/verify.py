"""``verify``: does a store match its manifest, and does every chunk decode to its checksum?"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field

from .digest import content_digest
from .errors import TrajstoreError
from .manifest import RemoteStoreFiles, StoreFiles, compare_files
from .reader import open as open_store
from .remote import is_remote
from .validate import validate


@dataclass
class VerifyReport:
    """``problems``: files or chunks that do not match; ``warnings``: what could not be checked."""

    path: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0
    content_digest: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str | os.PathLike, *, content: bool = True) -> VerifyReport:
    """Check the manifest (every file present, none extra, each SHA-256 equal), then every rule
    and chunk checksum (:func:`trajstore.validate.validate`), then, with ``content``, the
    content digest and store id the manifest states. Never raises for a damaged store."""
    path = os.fspath(path)
    report = VerifyReport(path)
    remote = is_remote(path)
    if not remote and not os.path.exists(path):
        report.problems.append(f"{path}: no such file or folder; check the path")
        return report
    if remote:  # a server that cannot be reached is one error, not a damaged store [V01]
        _check_reachable(path)
    unreadable = False
    try:
        files = RemoteStoreFiles(path) if remote else StoreFiles(path)
        if remote and files.kind == "dir" and not files.listable:
            report.warnings.append("the server cannot list folders: extra files were not looked for")
        manifest = files.read_manifest()
    except (TrajstoreError, OSError, zipfile.BadZipFile) as exc:
        report.problems.append(str(exc))
        manifest, unreadable = None, True
    if manifest is None and not unreadable:
        report.warnings.append(
            "no manifest: files were not checked against digests, only the chunk checksums "
            "(write one with 'trajstore manifest')"
        )
    elif manifest is not None:
        report.problems.extend(compare_files(files, manifest))
        report.files_checked = len(manifest["files"])
    checked = validate(path)
    report.problems.extend(checked.problems)
    if manifest is None or not content or checked.problems:
        return report
    try:
        with open_store(path) as traj:
            report.content_digest = content_digest(traj)
            store_id = traj.store_id
    except TrajstoreError as exc:
        report.problems.append(str(exc))
        return report
    if manifest.get("content_digest") and manifest["content_digest"] != report.content_digest:
        report.problems.append(
            f"content digest {report.content_digest} differs from the manifest's {manifest['content_digest']}"
        )
    if manifest.get("store_id") and manifest["store_id"] != store_id:
        report.problems.append(f"store id {store_id} differs from the manifest's {manifest['store_id']}")
    return report


def _check_reachable(url: str) -> None:
    """For an http(s) URL: the store's entry file answers (with byte ranges, as reading needs);
    else a one-line :class:`~trajstore.remote.RemoteError` or ``StoreNotFoundError`` saying why
    (connection refused, DNS, HTTP 404/403, no range support)."""
    from .remote import check_http, require_fsspec

    require_fsspec(url)
    name = url.rstrip("/").rsplit("/", 1)[-1].lower()
    single_file = name.endswith((".zip", ".h5", ".hdf5", ".hdf"))
    check_http(url if single_file else url.rstrip("/") + "/zarr.json", suffix=not single_file)
