"""One-file packages of a store: a zip of its Zarr folder, card and manifest (entries STORED).

Entries are stored uncompressed (the chunks are compressed already), so a reader seeks straight
to a shard's bytes: ``trajstore.open("run.trajstore.zip")`` reads slices without unpacking.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile

from trajstore import spec
from trajstore.backends import backend_kind
from trajstore.convert import convert
from trajstore.errors import StoreExistsError, TrajstoreError
from trajstore.manifest import StoreFiles, build_manifest, compare_files
from trajstore.reader import open as open_store
from trajstore.safety import check_distinct, replace_with

from .card import CARD_FILES, card_texts

_HEADROOM = 1.05  # free space asked for beyond the declared size when unpacking


class PackError(TrajstoreError):
    """A package cannot be written or read safely."""


def pack(src: str, out: str, *, overwrite: bool = False) -> dict:
    """Write ``out`` (``*.zip``): the Zarr files of ``src`` (an HDF5 store is converted first),
    its dataset card and a manifest of all of them. Returns the manifest."""
    src, out = os.fspath(src).rstrip("/"), os.fspath(out)
    if not out.lower().endswith(".zip"):
        raise PackError(f"{out}: name the package *.zip (e.g. run.trajstore.zip)")
    check_distinct(src, out)
    if os.path.exists(out) and not overwrite:
        raise StoreExistsError(f"{out} exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(out))
    with tempfile.TemporaryDirectory(dir=parent, prefix=".trajstore-pack-") as tmp:
        folder = src
        if backend_kind(src) != "zarr" or not os.path.isdir(src):
            folder = os.path.join(tmp, "store.zarr")
            convert(src, folder)
        with open_store(folder) as traj:
            texts = card_texts(traj, source=os.path.basename(src))
        data_files = {rel: size for rel, size in StoreFiles(folder).list().items() if rel not in CARD_FILES}
        card_dir = os.path.join(tmp, "card")
        os.makedirs(card_dir)
        for name, text in texts.items():
            with open(os.path.join(card_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        manifest = build_manifest(folder)
        from trajstore.manifest import sha256_of

        entries = [e for e in manifest["files"] if e["path"] in data_files]
        for name in sorted(texts):
            full = os.path.join(card_dir, name)
            with open(full, "rb") as f:
                entries.append({"path": name, "size": os.path.getsize(full), "sha256": sha256_of(f)})
        manifest["files"] = sorted(entries, key=lambda e: e["path"])
        partial = os.path.join(tmp, "package.zip")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
            for rel in sorted(data_files):
                z.write(os.path.join(folder, *rel.split("/")), rel)
            for name in sorted(texts):
                z.write(os.path.join(card_dir, name), name)
            z.writestr(spec.MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
        os.replace(partial, out)
    return manifest


def unpack(package: str, dest: str, *, overwrite: bool = False) -> dict:
    """Restore the directory store of ``package`` at ``dest`` and verify it against the
    package's manifest; nothing is written outside ``dest``. Returns the manifest."""
    package, dest = os.fspath(package), os.fspath(dest).rstrip("/")
    if os.path.isdir(package):
        raise PackError(f"{package} is a folder, not a package; unpack takes a .zip from 'trajstore pack'")
    if not zipfile.is_zipfile(package):
        raise PackError(f"{package} is not a zip file (truncated?); 'trajstore pack' writes packages")
    if os.path.exists(dest) and not overwrite:
        raise StoreExistsError(f"{dest} exists; pass --overwrite to replace it")
    files = StoreFiles(package)
    manifest = files.read_manifest()
    if manifest is None:
        raise PackError(f"{package} has no {spec.MANIFEST_NAME}; it was not written by 'trajstore pack'")
    with zipfile.ZipFile(package) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        for info in infos:
            _check_entry(package, info)
        declared = sum(i.file_size for i in infos)
        parent = os.path.dirname(os.path.abspath(dest))
        free = shutil.disk_usage(parent).free
        if declared * _HEADROOM > free:
            raise PackError(
                f"{package} unpacks to {declared / 1e9:.2f} GB but {parent} has {free / 1e9:.2f} GB free"
            )
        tmp = tempfile.mkdtemp(dir=parent, prefix=".trajstore-unpack-")
        try:
            for info in infos:
                target = os.path.join(tmp, *info.filename.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    with z.open(info) as src_f, open(target, "wb") as out_f:
                        shutil.copyfileobj(src_f, out_f, 4 * 1024 * 1024)
                except zipfile.BadZipFile as exc:
                    raise PackError(f"{package}: entry {info.filename} is damaged ({exc})") from None
            problems = compare_files(StoreFiles(tmp), manifest)
            if problems:
                raise PackError(
                    f"{package}: {problems[0]} ({len(problems)} problem(s)); the package is damaged"
                )
            replace_with(tmp, dest, overwrite=overwrite)  # only ever replaces a store
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return manifest


def _check_entry(package: str, info: zipfile.ZipInfo) -> None:
    """Refuse entry names that would leave the destination, and links."""
    name = info.filename
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ":" in parts[0] or ".." in parts or "" in parts:
        raise PackError(f"{package}: entry {name!r} would be written outside the destination; refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise PackError(f"{package}: entry {name!r} is a symbolic link; refused")
