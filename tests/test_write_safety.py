"""Write paths that cannot destroy the source; links that leave a store are refused."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

import trajstore
from trajstore.convert import convert
from trajstore.errors import UnsafePathError
from trajstore.validate import validate

from .conftest import run_cli, write_store


def cli(*args):
    """The CLI in this process (much quicker than a subprocess); same result fields."""
    from types import SimpleNamespace

    from click.testing import CliRunner
    from trajstore.cli.main import cli as group

    r = CliRunner().invoke(group, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # no traceback
    return SimpleNamespace(returncode=r.exit_code, stderr=r.stderr, stdout=r.stdout)


def _one_error_line(p) -> str:
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def _intact(path, w) -> None:
    assert validate(path).valid
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.weights[:], w)


def test_convert_onto_itself_is_refused_and_source_kept(tmp_path, suffix):
    src = tmp_path / f"s{suffix}"
    w, _ = write_store(src, n_records=20)
    err = _one_error_line(run_cli("convert", src, src, "--overwrite"))
    assert "source store itself" in err
    _intact(src, w)
    # the same store named another way: relative, with a trailing ./, through a symlink
    os.symlink(src, tmp_path / f"link{suffix}")
    for dst in (f"./s{suffix}", str(tmp_path / "." / f"s{suffix}"), str(tmp_path / f"link{suffix}")):
        with pytest.raises(UnsafePathError, match="source store itself"):
            cwd = os.getcwd()
            os.chdir(tmp_path)
            try:
                convert(src, dst, overwrite=True)
            finally:
                os.chdir(cwd)
    _intact(src, w)


def test_convert_inside_or_around_the_source_is_refused(tmp_path):
    src = tmp_path / "s.zarr"
    w, _ = write_store(src, n_records=10)
    with pytest.raises(UnsafePathError, match="inside the source"):
        convert(src, src / "weights" / "copy.h5", overwrite=True)
    outer = tmp_path / "outer.zarr"
    outer.mkdir()
    inner = outer / "s.h5"
    convert(src, inner)
    with pytest.raises(UnsafePathError, match="contains the source"):
        convert(inner, outer, overwrite=True)
    _intact(src, w)
    _intact(inner, w)


def test_overwrite_deletes_only_stores(tmp_path, suffix):
    src = tmp_path / f"s{suffix}"
    w, _ = write_store(src, n_records=10)
    other = ".h5" if suffix == ".zarr" else ".zarr"
    # a folder / file that merely has a store's name
    victim = tmp_path / f"precious{other}"
    if other == ".zarr":
        victim.mkdir()
        (victim / "thesis.tex").write_text("years of work")
    else:
        victim.write_bytes(b"not an hdf5 file")
    err = _one_error_line(cli("convert", src, victim, "--overwrite"))
    assert "not a trajstore store" in err
    err = _one_error_line(cli("toy", "--steps", "5", "--repeats", "1", "-o", victim, "--overwrite"))
    assert "not a trajstore store" in err
    assert victim.exists() and (victim.is_file() or (victim / "thesis.tex").exists())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    # a real store is replaced, and an existing destination without --overwrite is refused
    dst = tmp_path / f"d{other}"
    write_store(dst, n_records=3, seed=9)
    assert "exists" in _one_error_line(cli("convert", src, dst))
    assert cli("convert", src, dst, "--overwrite").returncode == 0
    _intact(dst, w)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, victim.name, dst.name])


def test_record_overwrite_refuses_a_non_store(tmp_path):
    out = tmp_path / "notes.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    err = _one_error_line(cli("record", "--overwrite", "-o", out, tmp_path / "missing.py"))
    assert "no such script" in err  # checked first; now with a script
    script = tmp_path / "t.py"
    script.write_text("print('never run')\n")
    err = _one_error_line(cli("record", "--overwrite", "-o", out, script))
    assert "not a trajstore store" in err and (out / "keep.txt").exists()


def _a_chunk_file(store):
    return next(p for p in (store / "weights" / "value").rglob("*") if p.is_file() and p.name != "zarr.json")


def _outside_file(tmp_path) -> str:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(os.urandom(64))
    return str(outside)


@pytest.mark.parametrize("what", ["chunk", "group"])
def test_zarr_symlink_leaving_the_store_is_refused(tmp_path, what):
    src = tmp_path / "s.zarr"
    write_store(src, n_records=20)
    if what == "chunk":
        chunk = _a_chunk_file(src)
        chunk.unlink()
        os.symlink(_outside_file(tmp_path), chunk)
    else:
        elsewhere = tmp_path / "elsewhere"
        os.rename(src / "observables" / "loss", elsewhere)
        os.symlink(elsewhere, src / "observables" / "loss")
    with pytest.raises(UnsafePathError, match="symbolic link leading outside the store"):
        trajstore.open(src)
    report = validate(src)
    assert not report.valid and "symbolic link" in report.problems[0]
    err = _one_error_line(cli("convert", src, tmp_path / "c.h5"))
    assert "symbolic link leading outside" in err and not (tmp_path / "c.h5").exists()
    err = _one_error_line(cli("info", src))
    assert "symbolic link" in err


def test_zarr_symlink_inside_the_store_is_allowed(tmp_path):
    src = tmp_path / "s.zarr"
    w, _ = write_store(src, n_records=5)
    os.symlink(src / "weights" / "zarr.json", src / "alias.json")
    _intact(src, w)


@pytest.mark.parametrize("what", ["external_link", "virtual", "external_storage"])
def test_hdf5_links_leaving_the_file_are_refused(tmp_path, what):
    src = tmp_path / "s.h5"
    write_store(src, n_records=20)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(20.0)
    with h5py.File(src, "a") as f:
        if what == "external_link":
            f["observables/stolen"] = h5py.ExternalLink(str(other), "/")
        elif what == "virtual":
            layout = h5py.VirtualLayout(shape=(20,), dtype="f8")
            layout[:] = h5py.VirtualSource(str(other), "data", shape=(20,))
            f.create_virtual_dataset("extra", layout)
        else:
            raw = tmp_path / "raw.bin"
            raw.write_bytes(b"\0" * 160)
            f.create_dataset("extra", shape=(20,), dtype="f8", external=[(str(raw), 0, 160)])
    with pytest.raises(UnsafePathError, match="outside the store|external files"):
        trajstore.open(src)
    report = validate(src)
    assert not report.valid and "refusing to read" in report.problems[0]
    err = _one_error_line(cli("convert", src, tmp_path / "c.zarr"))
    assert "refusing to read" in err and not (tmp_path / "c.zarr").exists()


def test_failed_convert_leaves_no_temporary_and_keeps_the_old_destination(tmp_path):
    src = tmp_path / "s.zarr"
    write_store(src, n_records=30)
    dst = tmp_path / "d.h5"
    w_old, _ = write_store(dst, n_records=4, seed=3)
    # damage the source after the header: the copy fails half-way
    _a_chunk_file(src).write_bytes(b"garbage")
    p = cli("convert", src, dst, "--overwrite")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    _intact(dst, w_old)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.h5", "s.zarr"]
