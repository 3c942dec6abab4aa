"""The checksum manifest of a store (format 1.1): SHA-256 of every file, plus identity.

Where it lives: ``trajstore-manifest.json`` at the root of a Zarr folder or of a packed zip;
``<file>.trajstore-manifest.json`` beside an HDF5 file. It lists every file of the store with
its size and SHA-256, the store's ``store_id`` and its content digest
(:mod:`trajstore.digest`). ``verify`` names every missing, extra or altered file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from typing import IO

from . import __version__, spec
from .errors import TrajstoreError
from .provenance import utc_now_iso

MANIFEST_VERSION = "1.0"
_READ_BYTES = 4 * 1024 * 1024


class ManifestError(TrajstoreError):
    """A manifest cannot be read, or the files do not match it."""


class StoreFiles:
    """The files of one store, by relative '/'-separated path: a folder, an HDF5 file or a zip."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.kind = (
            "zip" if self.path.lower().endswith(".zip") else ("dir" if os.path.isdir(self.path) else "file")
        )

    @property
    def manifest_key(self) -> str:
        return spec.MANIFEST_NAME if self.kind != "file" else ""

    def manifest_path(self) -> str:
        """Where the manifest of a folder or HDF5 store is (not meaningful for a zip)."""
        if self.kind == "file":
            return f"{self.path}.{spec.MANIFEST_NAME}"
        return os.path.join(self.path, spec.MANIFEST_NAME)

    def list(self) -> dict[str, int]:
        """Relative path -> size in bytes of every data file (the manifest itself excluded)."""
        if self.kind == "file":
            return {os.path.basename(self.path): os.path.getsize(self.path)}
        if self.kind == "zip":
            with zipfile.ZipFile(self.path) as z:
                return {
                    i.filename: i.file_size
                    for i in z.infolist()
                    if not i.is_dir() and i.filename != spec.MANIFEST_NAME
                }
        out = {}
        for dirpath, dirnames, files in os.walk(self.path):
            dirnames.sort()
            for name in files:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.path).replace(os.sep, "/")
                if rel != spec.MANIFEST_NAME:
                    out[rel] = os.lstat(full).st_size
        return out

    def open(self, rel: str) -> IO[bytes]:
        if self.kind == "file":
            return open(self.path, "rb")
        if self.kind == "zip":
            z = zipfile.ZipFile(self.path)
            return _ClosingEntry(z, z.open(rel))
        return open(os.path.join(self.path, *rel.split("/")), "rb")

    def read_manifest(self) -> dict | None:
        """The manifest as a dict, or ``None`` when the store has none."""
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.path) as z:
                    if spec.MANIFEST_NAME not in z.namelist():
                        return None
                    text = z.read(spec.MANIFEST_NAME)
            else:
                if not os.path.isfile(self.manifest_path()):
                    return None
                with open(self.manifest_path(), "rb") as f:
                    text = f.read()
            manifest = json.loads(text)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ManifestError(f"{self.path}: the manifest cannot be read ({exc})") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise ManifestError(
                f"{self.path}: the manifest has no 'files' list; rewrite it with 'trajstore manifest'"
            )
        return manifest


class _ClosingEntry:
    """A zip member that closes its archive with it."""

    def __init__(self, archive: zipfile.ZipFile, member: IO[bytes]):
        self._archive, self._member = archive, member

    def read(self, n: int = -1) -> bytes:
        return self._member.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._member.close()
        self._archive.close()


def sha256_of(stream: IO[bytes]) -> str:
    h = hashlib.sha256()
    with stream as f:
        for piece in iter(lambda: f.read(_READ_BYTES), b""):
            h.update(piece)
    return h.hexdigest()


def file_entries(files: StoreFiles) -> Iterator[dict]:
    """``{"path", "size", "sha256"}`` of every file, in sorted path order."""
    for rel, size in sorted(files.list().items()):
        yield {"path": rel, "size": size, "sha256": sha256_of(files.open(rel))}


def build_manifest(path: str, *, content_digest: str | None = None) -> dict:
    """The manifest of the store at ``path`` (reads every byte; content digest computed unless given)."""
    from .digest import content_digest as digest_of
    from .reader import open as open_store

    with open_store(path) as traj:
        store_id = traj.store_id
        digest = content_digest or digest_of(traj)
    return {
        "manifest_version": MANIFEST_VERSION,
        "algorithm": "sha256",
        "store_id": store_id,
        "content_digest": digest,
        "created": utc_now_iso(),
        "creator": {"program": "trajstore", "version": __version__},
        "files": list(file_entries(StoreFiles(path))),
    }


def write_manifest(path: str) -> str:
    """Write the manifest of a folder or HDF5 store where it belongs; return its path."""
    files = StoreFiles(path)
    if files.kind == "zip":
        raise ManifestError(f"{path}: a packed store carries the manifest written by 'trajstore pack'")
    manifest = build_manifest(path)
    target = files.manifest_path()
    tmp = target + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, target)
    return target


def read_manifest(path: str) -> dict | None:
    """The manifest of a local store, or ``None`` if it has none (or cannot be read)."""
    try:
        return StoreFiles(path).read_manifest()
    except ManifestError:
        return None


def compare_files(files: StoreFiles, manifest: dict) -> list[str]:
    """One line per missing, extra or altered file (empty when every file matches)."""
    problems = []
    listed = {e.get("path"): e for e in manifest["files"] if isinstance(e, dict)}
    present = files.list()
    if present is None:  # a remote folder that cannot be listed: check the files named only
        sizes = {rel: files.size(rel) for rel in listed}
        present = {rel: n for rel, n in sizes.items() if n is not None}
        listed_only = True
    else:
        listed_only = False
    for rel in sorted(set(listed) - set(present)):
        problems.append(f"missing file {rel} (listed in the manifest)")
    for rel in sorted(set(present) - set(listed)) if not listed_only else ():
        problems.append(f"extra file {rel} (not in the manifest)")
    for rel in sorted(set(listed) & set(present)):
        entry = listed[rel]
        if entry.get("size") != present[rel]:
            problems.append(
                f"altered file {rel}: {present[rel]} bytes, the manifest says {entry.get('size')}"
            )
        else:
            try:
                digest = sha256_of(files.open(rel))
            except (OSError, zipfile.BadZipFile) as exc:  # a package entry failing its CRC-32
                problems.append(f"altered file {rel}: it cannot be read ({exc})")
                continue
            if entry.get("sha256") != digest:
                problems.append(f"altered file {rel}: its SHA-256 differs from the manifest's")
    return problems


class RemoteStoreFiles:
    """The files of a store at an fsspec URL (``https://``, ``s3://``, ...): the same reading
    interface as :class:`StoreFiles`. ``list()`` is ``None`` where the protocol cannot list a
    folder (HTTP); the files the manifest names are then checked, and extra files cannot be."""

    def __init__(self, url: str):
        from .remote import protocol, require_fsspec

        fsspec = require_fsspec(url)
        self.path = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.path)
        name = self.root.rsplit("/", 1)[-1].lower()
        self.kind = (
            "zip" if name.endswith(".zip") else ("file" if name.endswith((".h5", ".hdf5", ".hdf")) else "dir")
        )
        self.listable = protocol(url) not in ("http", "https")

    def _key(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def list(self) -> dict[str, int] | None:
        if self.kind == "file":
            return {self.root.rsplit("/", 1)[-1]: int(self.fs.info(self.root)["size"])}
        if self.kind == "zip":
            with zipfile.ZipFile(self.fs.open(self.root, "rb")) as z:
                return {
                    i.filename: i.file_size
                    for i in z.infolist()
                    if not i.is_dir() and i.filename != spec.MANIFEST_NAME
                }
        if not self.listable:
            return None
        found = self.fs.find(self.root, detail=True)
        prefix = self.root.rstrip("/") + "/"
        return {
            k[len(prefix) :]: int(v["size"])
            for k, v in found.items()
            if k.startswith(prefix) and k[len(prefix) :] != spec.MANIFEST_NAME
        }

    def size(self, rel: str) -> int | None:
        try:
            return int(self.fs.info(self.root if self.kind == "file" else self._key(rel))["size"])
        except (FileNotFoundError, OSError):
            return None

    def open(self, rel: str) -> IO[bytes]:
        if self.kind == "file":
            return self.fs.open(self.root, "rb")
        if self.kind == "zip":
            z = zipfile.ZipFile(self.fs.open(self.root, "rb"))
            return _ClosingEntry(z, z.open(rel))
        return self.fs.open(self._key(rel), "rb")

    def read_manifest(self) -> dict | None:
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.fs.open(self.root, "rb")) as z:
                    if spec.MANIFEST_NAME not in z.namelist():
                        return None
                    text = z.read(spec.MANIFEST_NAME)
            else:
                key = (
                    f"{self.root}.{spec.MANIFEST_NAME}"
                    if self.kind == "file"
                    else self._key(spec.MANIFEST_NAME)
                )
                text = self.fs.cat_file(key)
            manifest = json.loads(text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ManifestError(f"{self.path}: the manifest cannot be read ({exc})") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise ManifestError(f"{self.path}: the manifest has no 'files' list")
        return manifest
