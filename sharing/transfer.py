"""``push`` and ``pull``: copy a store to and from any fsspec URL, resumable and verified.

Credentials come from each back end's usual places (for S3: the environment, ``~/.aws``,
``AWS_ENDPOINT_URL`` for other S3 servers); nothing secret is written into a store or a log.
Both directions are driven by the store's manifest: a file whose copy already matches it is
skipped, so an interrupted transfer resumes where it stopped, and the result is verified
against the manifest at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor

from trajstore import spec
from trajstore.errors import StoreExistsError, TrajstoreError
from trajstore.manifest import StoreFiles, build_manifest, compare_files, sha256_of
from trajstore.remote import require_fsspec
from trajstore.validate import validate

DEFAULT_WORKERS = 8


class TransferError(TrajstoreError):
    """A push or pull could not complete, or its result does not match the manifest."""


def _progress(total: int, what: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=what, disable=not enabled, leave=False)


def _manifest_key(kind: str, name: str) -> str:
    """Where the manifest sits relative to the store's URL."""
    return spec.MANIFEST_NAME if kind == "dir" else f"{name}.{spec.MANIFEST_NAME}"


def _safe(rel: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or ".." in parts or "" in parts:
        raise TransferError(f"the manifest names {rel!r}, which would leave the destination; refused")
    return rel


def push(store: str, url: str, *, workers: int = DEFAULT_WORKERS, progress: bool = True) -> dict:
    """Copy the local ``store`` (folder, .h5 or .zip) to ``url``; return its manifest.

    Files already at the destination with the same size and MD5 (S3 ETag) or SHA-256 are not
    sent again. The manifest goes last, so a store with a manifest at the URL is complete.
    """
    store = os.fspath(store).rstrip("/")
    if "://" in store:
        raise TransferError(f"{store}: push copies a local store; give its path")
    files = StoreFiles(store)
    manifest = files.read_manifest() if files.kind != "file" else _sidecar_manifest(store)
    if manifest is None:
        manifest = build_manifest(store)
    fsspec = require_fsspec(url)
    fs, root = fsspec.core.url_to_fs(url.rstrip("/"))
    name = posixpath.basename(root)
    if files.kind == "dir":
        targets = {
            e["path"]: (os.path.join(store, *e["path"].split("/")), posixpath.join(root, _safe(e["path"])))
            for e in manifest["files"]
        }
    else:
        targets = {e["path"]: (store, root) for e in manifest["files"]}
    entries = {e["path"]: e for e in manifest["files"]}
    todo = [rel for rel in targets if not _remote_matches(fs, targets[rel][1], entries[rel], targets[rel][0])]
    total = sum(entries[rel]["size"] for rel in todo)
    with _progress(total, f"push {name}", progress) as bar:

        def send(rel: str) -> None:
            local, remote_path = targets[rel]
            fs.makedirs(posixpath.dirname(remote_path), exist_ok=True)
            fs.put_file(local, remote_path)
            bar.update(entries[rel]["size"])

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(send, todo))
    parent = root if files.kind == "dir" else posixpath.dirname(root)
    key = _manifest_key("dir" if files.kind == "dir" else "file", name)
    fs.pipe_file(posixpath.join(parent, key), (json.dumps(manifest, indent=1) + "\n").encode())
    missing = [rel for rel in targets if not _remote_matches(fs, targets[rel][1], entries[rel])]
    if missing:
        raise TransferError(
            f"{url}: {len(missing)} file(s) did not arrive intact, e.g. {missing[0]}; run push again"
        )
    return manifest


def pull(url: str, dest: str, *, workers: int = DEFAULT_WORKERS, progress: bool = True) -> dict:
    """Copy the store at ``url`` to the local ``dest`` by its manifest; return the manifest.

    Files already at ``dest`` whose SHA-256 matches are kept; each file arrives as ``.part`` and
    is renamed when complete. The result is checked against the manifest and every chunk checksum.
    """
    dest = os.fspath(dest).rstrip("/")
    url = url.rstrip("/")
    fsspec = require_fsspec(url)
    fs, root = fsspec.core.url_to_fs(url)
    name = posixpath.basename(root)
    single = name.lower().endswith((".h5", ".hdf5", ".hdf", ".zip"))
    key = _manifest_key("file" if single else "dir", name)
    manifest_url = posixpath.join(posixpath.dirname(root) if single else root, key)
    try:
        manifest = json.loads(fs.cat_file(manifest_url))
    except FileNotFoundError:
        raise TransferError(
            f"{url} has no manifest ({key}); ask the sender to run 'trajstore manifest' or 'trajstore pack'"
        ) from None
    except (OSError, ValueError) as exc:
        raise TransferError(f"{url}: the manifest cannot be read ({exc})") from None
    entries = manifest.get("files")
    if not isinstance(entries, list):
        raise TransferError(f"{url}: the manifest has no 'files' list")
    if os.path.exists(dest) and single:
        raise StoreExistsError(f"{dest} exists; remove it or choose another destination")
    if single:
        plan = {e["path"]: (root, dest) for e in entries}
    else:
        plan = {
            e["path"]: (posixpath.join(root, _safe(e["path"])), os.path.join(dest, *e["path"].split("/")))
            for e in entries
        }
    by_path = {e["path"]: e for e in entries}
    todo = [rel for rel, (_, local) in plan.items() if not _local_matches(local, by_path[rel])]
    with _progress(sum(by_path[r]["size"] for r in todo), f"pull {name}", progress) as bar:

        def fetch(rel: str) -> None:
            remote_path, local = plan[rel]
            os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
            fs.get_file(remote_path, local + ".part")
            os.replace(local + ".part", local)
            bar.update(by_path[rel]["size"])

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(fetch, todo))
    if single:  # the file may arrive under another name: the manifest follows it
        manifest = {**manifest, "files": [{**e, "path": os.path.basename(dest)} for e in entries]}
        with open(f"{dest}.{spec.MANIFEST_NAME}", "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
    else:
        with open(os.path.join(dest, spec.MANIFEST_NAME), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
    problems = compare_files(StoreFiles(dest), manifest) + validate(dest).problems
    if problems:
        raise TransferError(f"{dest}: {problems[0]} ({len(problems)} problem(s)); run pull again")
    return manifest


def _sidecar_manifest(path: str) -> dict | None:
    side = f"{path}.{spec.MANIFEST_NAME}"
    if not os.path.isfile(side):
        return None
    with open(side, encoding="utf-8") as f:
        return json.load(f)


def _local_matches(local: str, entry: dict) -> bool:
    if not os.path.isfile(local) or os.path.getsize(local) != entry.get("size"):
        return False
    with open(local, "rb") as f:
        return sha256_of(f) == entry.get("sha256")


def _remote_matches(fs, remote_path: str, entry: dict, local: str | None = None) -> bool:
    """Is the file at ``remote_path`` the one the manifest lists? By size; then, given the local
    copy, by the MD5 that S3 reports as ETag (single-part uploads), else by reading it back."""
    try:
        info = fs.info(remote_path)
    except (FileNotFoundError, OSError):
        return False
    if info.get("size") != entry.get("size"):
        return False
    if local is None:
        return True
    etag = str(info.get("ETag", "")).strip('"')
    if etag and "-" not in etag:
        md5 = hashlib.md5(usedforsecurity=False)
        with open(local, "rb") as f:
            for piece in iter(lambda: f.read(4 * 1024 * 1024), b""):
                md5.update(piece)
        return etag == md5.hexdigest()
    try:
        return hashlib.sha256(fs.cat_file(remote_path)).hexdigest() == entry.get("sha256")
    except OSError:
        return False
