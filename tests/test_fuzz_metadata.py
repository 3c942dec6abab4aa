"""Fuzzed stores: every mutation breaks a rule of the spec (or flips random bytes), and

* ``validate`` never raises and never calls a broken store valid,
* ``trajstore.open`` + ``info``'s summary give a one-line :class:`TrajstoreError` or the
  original numbers, never a traceback and never other numbers,
* declared sizes are checked before anything is allocated.

The corpus (> 250 mutations over Zarr and HDF5 stores) is generated here from a seed;
``TRAJSTORE_FUZZ_FLIPS`` (default 20) sets the random byte flips per back end on top.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc

import h5py
import numpy as np
import pytest
import zarr

import trajstore
from trajstore.info import summarize
from trajstore.validate import validate

from .conftest import run_cli, write_store

FLIPS = int(os.environ.get("TRAJSTORE_FUZZ_FLIPS", "20"))
DEEP = "[" * 100_000 + "]" * 100_000
DELETE = object()

# (group, attribute, new value): each breaks a rule. DEEP is JSON text nested 100 000 deep.
ATTRS = [
    *[("", "spec_name", v) for v in ("trajstorx", 5, DELETE)],
    *[("", "spec_version", v) for v in ("1.x", "3.0", 1.1, "", DELETE)],
    *[("", "creator", v) for v in ("me", {"program": 1, "version": "x"}, [], DELETE, {"program": "a"}, DEEP)],
    *[
        ("", "created", v)
        for v in (123, "yesterday", "2024-01-01T00:00:00", DELETE, "2024-13-45T00:00:00+00:00")
    ],
    *[("", "provenance", v) for v in ([1], "x", 5)],
    *[("", "metadata", v) for v in ([1], "x", 5, DEEP)],
    *[
        ("", "lossy", v)
        for v in (
            "yes",
            {"method": "x"},
            {"method": "bitround", "keepbits": 99, "groups": ["weights"]},
            True,
            {"method": "bitround", "keepbits": 4, "groups": ["nope"]},
        )
    ],
    *[("", "groups", v) for v in (["weights", "nothere"], "weights", [1])],
    *[("weights", "n_committed", v) for v in (True, 10**9, -1, 1.5, "3", DELETE, 10**30, 10**6, DEEP)],
    *[
        ("weights", "layout", v)
        for v in (
            [{"name": "a", "shape": [10.5, 15], "offset": 0}],
            [{"name": "a", "shape": "150", "offset": 0}],
            [{"name": "a", "shape": [-1], "offset": 0}],
            [{"name": "a", "shape": [91], "offset": 1}],
            [{"shape": [91], "offset": 0}],
            [{"name": "a", "shape": [1], "offset": 0}, {"name": "a", "shape": [90], "offset": 1}],
            [{"name": "a", "shape": [91], "offset": 0, "size": 90}],
            [],
            "x",
            [{"name": "a", "shape": [91], "offset": 0, "dtype": 5}],
            [{"name": "a", "shape": [10**12], "offset": 0}],
            [{"name": "a", "shape": [True, 91], "offset": 0}],
            [{"name": "a", "shape": [92], "offset": 0}],
            DEEP,
        )
    ],
    *[("observables/loss", "n_committed", v) for v in (True, -1, 10**9, "3")],
    *[("observables/loss", "evaluated_at", v) for v in ("sometime", 5)],
    ("observables/loss", "unit", 5),
    ("observables/loss", "description", []),
    *[("weights", "integrity", v) for v in (DELETE, "x", DEEP)],
    *[("observables/loss", "integrity", v) for v in (DELETE, {"algorithm": "crc32c"})],
]

# (group, edit of the integrity index): each breaks V41, V43 or V44.
INDEX_EDITS = [
    ("weights", "algorithm", lambda ix: ix.update(algorithm="md5")),
    ("weights", "fewer", lambda ix: ix.update(n_committed=8, blocks=ix["blocks"][:1])),
    ("weights", "value digest", lambda ix: ix["blocks"][0].__setitem__(2, (ix["blocks"][0][2] + 1) % 2**32)),
    ("weights", "step digest", lambda ix: ix["blocks"][1].__setitem__(3, (ix["blocks"][1][3] + 1) % 2**32)),
    ("weights", "time digest", lambda ix: ix["blocks"][2].__setitem__(4, (ix["blocks"][2][4] + 1) % 2**32)),
    ("weights", "stop", lambda ix: ix["blocks"][0].__setitem__(1, 7)),
    ("weights", "nbytes", lambda ix: ix["blocks"][0].__setitem__(5, 12345)),
    ("weights", "arrays", lambda ix: ix.update(arrays=["value", "step"])),
    ("weights", "digest type", lambda ix: ix["blocks"][0].__setitem__(2, "abc")),
    ("observables/loss", "value digest", lambda ix: ix["blocks"][0].__setitem__(2, 1)),
]


# (1.2) Both back ends keep the full blocks of the weights' index as rows of weights/integrity
# (``rows`` is the h5py dataset or the zarr array, ``ix`` the attribute).
INDEX_ROW_EDITS = [
    ("value digest", lambda g, rows, ix: rows.__setitem__((1, 2), (int(rows[1, 2]) + 1) % 2**32)),
    ("stop", lambda g, rows, ix: rows.__setitem__((0, 1), 7)),
    ("deleted", lambda g, rows, ix: g.__delitem__("integrity")),
    ("fewer rows", lambda g, rows, ix: rows.resize((ix["n_blocks"] - 1, rows.shape[1]))),
    ("n_blocks 1e9", lambda g, rows, ix: ix.update(n_blocks=10**9)),
    ("n_blocks -1", lambda g, rows, ix: ix.update(n_blocks=-1)),
    ("n_blocks less", lambda g, rows, ix: ix.update(n_blocks=ix["n_blocks"] - 1)),
    ("null nbytes of a row", lambda g, rows, ix: rows.__setitem__((0, 5), -2)),
]

# Edits of the rows array's zarr.json: each makes the index unreadable by the rules [V41].
ZARR_ROWS_META_EDITS = [
    ("codec", lambda m: m["codecs"].insert(0, {"name": "vlen-utf8"})),
    ("dtype", lambda m: m.update(data_type="float64", fill_value=0.0)),
    ("huge chunk", lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[10**9, 7])),
    ("not an array", lambda m: m.update(node_type="group")),
    ("storage transformer", lambda m: m.update(storage_transformers=[{"name": "x"}])),
]


def _edit_rows(path, edit):
    if str(path).endswith(".zarr"):
        g = zarr.open_group(path, mode="r+")["weights"]
        ix = dict(g.attrs["integrity"])
        assert ix["n_blocks"] >= 2, "the original store keeps its blocks as rows"
        edit(g, g["integrity"], ix)
        g.attrs["integrity"] = ix
        return
    with h5py.File(path, "r+", locking=False) as f:
        g = f["weights"]
        ix = json.loads(g.attrs["integrity"])
        assert ix["n_blocks"] >= 2, "the original store keeps its blocks as rows"
        edit(g, g["integrity"], ix)
        g.attrs["integrity"] = json.dumps(ix)


def _index_as_attribute(path, group):
    """Fold the rows of a group's integrity array (1.2) into the attribute, as a 1.1 writer
    kept the index, so edits of the attribute's blocks apply to every block."""
    ix = _get_attr(path, group, "integrity")
    rows = []
    if ix.pop("n_blocks", 0):
        if str(path).endswith(".zarr"):
            rows = zarr.open_array(path / group / "integrity", mode="r")[()].tolist()
            shutil.rmtree(path / group / "integrity")
        else:
            with h5py.File(path, "r+", locking=False) as f:
                rows = f[group]["integrity"][()].tolist()
                del f[group]["integrity"]
        rows = [[*r[:-2], *(None if v == -1 else v for v in r[-2:])] for r in rows]
    ix["blocks"] = rows + ix["blocks"]
    _set_attr(path, group, "integrity", ix)


def _walk_codecs(codecs):
    for c in codecs:
        yield c
        conf = c.get("configuration") or {}
        yield from _walk_codecs(conf.get("codecs", ()))
        yield from _walk_codecs(conf.get("index_codecs", ()))


def _set_endian(meta, where):
    """Big endian for the data ('data') or the shard index ('index') bytes codec."""
    for c in meta["codecs"]:
        if c["name"] == "sharding_indexed":
            key = "codecs" if where == "data" else "index_codecs"
            for inner in c["configuration"][key]:
                if inner["name"] == "bytes":
                    inner["configuration"] = {"endian": "big"}
            return
        if c["name"] == "bytes":
            c["configuration"] = {"endian": "big"}


def _rename_codec(meta, old, new):
    for c in _walk_codecs(meta["codecs"]):
        if c["name"] == old:
            c["name"] = new


def _drop_codec(meta, name):
    for c in [meta, *(c.get("configuration") or {} for c in meta["codecs"])]:
        if isinstance(c.get("codecs"), list):
            c["codecs"] = [x for x in c["codecs"] if x["name"] != name]


def _transpose(meta, order):
    for c in _walk_codecs(meta["codecs"]):
        if c["name"] == "transpose":
            c["configuration"]["order"] = order


def _inner_chunks(meta, shape):
    for c in meta["codecs"]:
        if c["name"] == "sharding_indexed":
            c["configuration"]["chunk_shape"] = shape


def _grid(meta, shape):
    meta["chunk_grid"]["configuration"]["chunk_shape"] = shape


# (array, name, edit of its zarr.json): each breaks a rule.
ZARR_ARRAY_EDITS = []
for _arr in ("weights/value", "weights/step", "weights/time", "observables/loss/value"):
    _two = _arr == "weights/value"
    ZARR_ARRAY_EDITS += [
        (_arr, "shape Infinity", lambda m: m.update(shape=[float("inf")] + m["shape"][1:])),
        (_arr, "shape 1e12", lambda m, t=_two: m.update(shape=[m["shape"][0], 10**12] if t else [10**12])),
        (_arr, "shape short", lambda m: m.update(shape=[3] + m["shape"][1:])),
        (_arr, "shape float", lambda m: m.update(shape=[40.5] + m["shape"][1:])),
        (_arr, "chunk 0", lambda m: _grid(m, [0] * len(m["shape"]))),
        (_arr, "chunk -1", lambda m: _grid(m, [-1] * len(m["shape"]))),
        (_arr, "grid rectilinear", lambda m: m["chunk_grid"].update(name="rectilinear")),
        (_arr, "dtype complex", lambda m: m.update(data_type="complex128")),
        (_arr, "dtype int32", lambda m: m.update(data_type="int32")),
        (_arr, "dtype bool", lambda m: m.update(data_type="bool")),
        (_arr, "dtype unknown", lambda m: m.update(data_type="float128x")),
        (
            _arr,
            "dtype float16",
            lambda m: m.update(data_type="float16" if m["data_type"] != "float16" else "int8"),
        ),
        (_arr, "endian big", lambda m: _set_endian(m, "data")),
        (_arr, "codec unknown", lambda m: _rename_codec(m, "crc32c", "lz4x")),
        (_arr, "codec dropped", lambda m: _drop_codec(m, "blosc")),
        (_arr, "dims", lambda m, t=_two: m.update(dimension_names=["a", "b"] if t else ["a"])),
        (_arr, "dims null", lambda m: m.update(dimension_names=None)),
        (_arr, "transformers", lambda m: m.update(storage_transformers=[{"name": "x"}])),
        (_arr, "ndim", lambda m: m.update(shape=m["shape"] + [1])),
    ]
ZARR_ARRAY_EDITS += [
    ("weights/value", "index endian big", lambda m: _set_endian(m, "index")),
    ("weights/value", "transpose order", lambda m: _transpose(m, [0, 0])),
    ("weights/value", "inner chunk", lambda m: _inner_chunks(m, [3, 91])),
    ("weights/value", "inner chunk 0", lambda m: _inner_chunks(m, [0, 91])),
    ("weights/value", "codec gzip for blosc", lambda m: _rename_codec(m, "blosc", "gzip")),
]


def _zarr_json(path, node):
    return path / node / "zarr.json" if node else path / "zarr.json"


def _edit_zarr(path, node, fn):
    f = _zarr_json(path, node)
    meta = json.loads(f.read_text())
    fn(meta)
    f.write_text(json.dumps(meta))


def _set_attr(path, group, key, value):
    if str(path).endswith(".zarr"):
        f = _zarr_json(path, group)
        meta = json.loads(f.read_text())
        attrs = meta.setdefault("attributes", {})
        if value is DELETE:
            attrs.pop(key, None)
            f.write_text(json.dumps(meta))
        elif value is DEEP:
            attrs[key] = "@@"
            f.write_text(json.dumps(meta).replace('"@@"', DEEP))
        else:
            attrs[key] = value
            f.write_text(json.dumps(meta))
        return
    with h5py.File(path, "r+", locking=False) as f:
        node = f[group] if group else f
        if value is DELETE:
            del node.attrs[key]
        elif value is DEEP or isinstance(value, (dict, list)):
            node.attrs[key] = value if value is DEEP else json.dumps(value)
        elif isinstance(value, int) and abs(value) >= 2**63:
            node.attrs[key] = str(value)  # HDF5 has no such integer: its text
        else:
            node.attrs[key] = value


def _get_attr(path, group, key):
    if str(path).endswith(".zarr"):
        return json.loads(_zarr_json(path, group).read_text())["attributes"][key]
    with h5py.File(path, "r", locking=False) as f:
        return json.loads((f[group] if group else f).attrs[key])


def _recreate(path, name, **changes):
    """Replace an HDF5 dataset by one with changed dtype / shape / filters (same values cast)."""
    with h5py.File(path, "r+", locking=False) as f:
        old = f[name]
        data = old[()]
        old_shape = data.shape
        attrs = dict(old.attrs)
        kwargs = {"dtype": old.dtype, "chunks": old.chunks, "maxshape": old.maxshape, "fletcher32": True}
        kwargs.update(changes)
        data = changes.pop("data", data)
        kwargs.pop("data", None)
        del f[name]
        shape = kwargs.pop("shape", data.shape)
        if data.shape != old_shape:
            kwargs["chunks"] = True
            kwargs["maxshape"] = tuple(None for _ in shape)
        ds = f.create_dataset(name, shape=shape, **kwargs)
        if data.shape == shape:
            ds[()] = data.astype(kwargs["dtype"])
        for k, v in attrs.items():
            ds.attrs[k] = v


def _hdf5_edits():
    edits = []
    for arr in ("weights/value", "weights/step", "weights/time", "observables/loss/value"):
        two = arr == "weights/value"
        edits += [
            (arr, "dtype int32", lambda p, a=arr: _recreate(p, a, dtype="<i4")),
            (arr, "dtype float16", lambda p, a=arr: _recreate(p, a, dtype="<f2" if "step" in a else "<i2")),
            (arr, "dtype complex", lambda p, a=arr: _recreate(p, a, dtype="<c16")),
            (
                arr,
                "scaleoffset",
                lambda p, a=arr: _recreate(p, a, scaleoffset=2, dtype="<i8", fletcher32=False),
            ),
            (arr, "ndim", lambda p, a=arr, t=two: _recreate(p, a, data=np.zeros((40,) if t else (40, 2)))),
            (arr, "dims", lambda p, a=arr: _set_attr(p, a, "dimension_names", ["a", "b"])),
            (arr, "dims deleted", lambda p, a=arr: _set_attr(p, a, "dimension_names", DELETE)),
            (arr, "short", lambda p, a=arr: _shrink(p, a)),
            (arr, "deleted", lambda p, a=arr: _delete_h5(p, a)),
        ]
    edits += [
        ("weights/value", "columns", lambda p: _recreate(p, "weights/value", data=np.zeros((40, 92), "<f4"))),
        ("weights", "group deleted", lambda p: _delete_h5(p, "weights")),
        ("observables", "group deleted", lambda p: _delete_h5(p, "observables")),
    ]
    return edits


def _shrink(path, name):
    with h5py.File(path, "r+", locking=False) as f:
        f[name].resize(3, axis=0)


def _delete_h5(path, name):
    with h5py.File(path, "r+", locking=False) as f:
        del f[name]


def _delete_zarr(path, name):
    shutil.rmtree(path / name)


ZARR_DATA_EDITS = [
    ("shard deleted", lambda p: (p / "weights/value/c/2/0").unlink()),
    ("shard emptied", lambda p: (p / "weights/value/c/2/0").write_bytes(b"")),
    (
        "shard truncated",
        lambda p: (p / "weights/value/c/2/0").write_bytes((p / "weights/value/c/2/0").read_bytes()[:-9]),
    ),
    ("shards swapped", lambda p: _swap(p / "weights/value/c/1/0", p / "weights/value/c/3/0")),
    (
        "shard copied",
        lambda p: (p / "weights/value/c/4/0").write_bytes((p / "weights/value/c/0/0").read_bytes()),
    ),
    ("step chunk deleted", lambda p: (p / "weights/step/c/0").unlink()),
    ("time chunk deleted", lambda p: (p / "weights/time/c/0").unlink()),
    ("loss chunk deleted", lambda p: (p / "observables/loss/value/c/0").unlink()),
    ("weights deleted", lambda p: _delete_zarr(p, "weights")),
    ("step deleted", lambda p: _delete_zarr(p, "weights/step")),
    ("observables deleted", lambda p: _delete_zarr(p, "observables")),
    ("loss step deleted", lambda p: _delete_zarr(p, "observables/loss/step")),
]


def _swap(a, b):
    x, y = a.read_bytes(), b.read_bytes()
    a.write_bytes(y)
    b.write_bytes(x)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    out = {}
    for suffix in (".zarr", ".h5"):
        path = base / f"orig{suffix}"
        write_store(path, n_records=40, chunk_records=8)
        out[suffix] = (path, _read_all(path))
    return out


def _read_all(path):
    with trajstore.open(path) as t:
        summarize(t)
        return t.weights[:], t.steps.copy(), t.times.copy(), {n: t.observable(n) for n in t.observables}


def _same(a, b) -> bool:
    return (
        a[0].tobytes() == b[0].tobytes()
        and np.array_equal(a[1], b[1])
        and a[2].tobytes() == b[2].tobytes()
        and a[3].keys() == b[3].keys()
        and all(
            np.array_equal(a[3][k][0], b[3][k][0]) and a[3][k][1].tobytes() == b[3][k][1].tobytes()
            for k in a[3]
        )
    )


def _copy(src, dst):
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


def _corpus():
    """(id, suffix, mutate(path), breaks_a_rule) for every mutation, generated."""
    out = []
    for suffix in (".zarr", ".h5"):
        for i, (group, key, value) in enumerate(ATTRS):
            out.append(
                (
                    f"{suffix}-attr{i}-{group or 'root'}.{key}",
                    suffix,
                    lambda p, g=group, k=key, v=value: _set_attr(p, g, k, v),
                    True,
                )
            )
        for group, name, edit in INDEX_EDITS:

            def mutate(p, g=group, e=edit):
                _index_as_attribute(p, g)
                ix = _get_attr(p, g, "integrity")
                e(ix)
                _set_attr(p, g, "integrity", ix)

            out.append((f"{suffix}-index-{group}-{name}", suffix, mutate, True))
        for name, edit in INDEX_ROW_EDITS:
            out.append((f"{suffix}-index-rows-{name}", suffix, lambda p, e=edit: _edit_rows(p, e), True))
    for name, edit in ZARR_ROWS_META_EDITS:
        mutate = lambda p, e=edit: _edit_zarr(p, "weights/integrity", e)  # noqa: E731
        out.append((f".zarr-index-rows-meta-{name}", ".zarr", mutate, True))
    for arr, name, edit in ZARR_ARRAY_EDITS:
        out.append((f".zarr-array-{arr}-{name}", ".zarr", lambda p, a=arr, e=edit: _edit_zarr(p, a, e), True))
    for name, edit in ZARR_DATA_EDITS:
        out.append((f".zarr-data-{name}", ".zarr", edit, True))
    for arr, name, edit in _hdf5_edits():
        out.append((f".h5-array-{arr}-{name}", ".h5", edit, True))
    rng = np.random.default_rng(2026)
    for suffix in (".zarr", ".h5"):
        for i in range(FLIPS):
            seed = int(rng.integers(2**31))
            out.append((f"{suffix}-flip{i}", suffix, lambda p, s=seed: _flip(p, s), False))
    return out


def _flip(path, seed):
    """Flip 1-4 random bytes of one metadata file (zarr.json) or anywhere in an HDF5 file."""
    rng = np.random.default_rng(seed)
    target = path
    if path.is_dir():
        files = sorted(path.rglob("zarr.json"))
        target = files[int(rng.integers(len(files)))]
    data = bytearray(target.read_bytes())
    for _ in range(int(rng.integers(1, 5))):
        i = int(rng.integers(8 if not path.is_dir() else 0, len(data)))
        data[i] ^= int(rng.integers(1, 256))
    target.write_bytes(bytes(data))


CORPUS = _corpus()


def test_corpus_size():
    assert len(CORPUS) >= 250


@pytest.mark.parametrize("mutation", CORPUS, ids=[c[0] for c in CORPUS])
def test_mutation(originals, tmp_path, mutation):
    name, suffix, mutate, breaks = mutation
    src, original = originals[suffix]
    path = tmp_path / f"m{suffix}"
    _copy(src, path)
    mutate(path)
    report = validate(path)  # never raises
    assert all("\n" not in p for p in report.problems)
    if breaks:
        assert not report.valid, f"{name}: a store that breaks the spec passed validate"
    if suffix == ".h5" and not breaks:
        # Random flips can make libhdf5 itself crash on open; read in a child, as validate does.
        from .test_integrity import _outcome_isolated

        outcome = _outcome_isolated(path, (original[0], original[1], original[3]))
        assert outcome in ("error", "same") or any("crashed" in p for p in report.problems), (name, outcome)
        assert outcome == "same" or not report.valid, name
        return
    try:
        got = _read_all(path)
    except trajstore.TrajstoreError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000
        return
    assert _same(got, original), f"{name}: opened and returned numbers the store did not record"
    if report.valid:
        assert not breaks


def test_declared_sizes_are_checked_before_allocation(originals, tmp_path):
    """n_committed 1e9 with arrays claiming 1e9 records: refused without allocating."""
    path = tmp_path / "big.zarr"
    _copy(originals[".zarr"][0], path)
    _set_attr(path, "weights", "n_committed", 10**9)
    for arr in ("weights/value", "weights/step", "weights/time"):
        _edit_zarr(path, arr, lambda m: m.update(shape=[10**9] + m["shape"][1:]))
    tracemalloc.start()
    try:
        with pytest.raises(trajstore.TrajstoreError, match="weights/(value|step)"):
            trajstore.open(path)
        report = validate(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not report.valid
    assert peak < 64 * 2**20, peak


@pytest.mark.parametrize("mutation", ["endian", "deep", "missing"])
def test_cli_one_line_on_fuzzed_stores(originals, tmp_path, mutation):
    path = tmp_path / "c.zarr"
    _copy(originals[".zarr"][0], path)
    if mutation == "endian":
        _edit_zarr(path, "weights/value", lambda m: _set_endian(m, "data"))
    elif mutation == "deep":
        _set_attr(path, "", "metadata", DEEP)
    else:
        (path / "weights/value/c/2/0").unlink()
    for command in ("info", "validate"):
        p = run_cli(command, path)
        assert p.returncode != 0
        assert "Traceback" not in p.stderr
        lines = p.stderr.strip().splitlines()
        assert command == "validate" or len(lines) == 1, p.stderr
