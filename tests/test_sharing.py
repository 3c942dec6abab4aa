"""Sharing a store between labs: describe, manifest and verify, pack and unpack, dataset cards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

import trajstore
from trajstore.annotate import annotate
from trajstore.convert import convert
from trajstore.description import DescriptionError, normalise, parse_author
from trajstore.digest import content_digest
from trajstore.manifest import write_manifest
from trajstore.validate import validate
from trajstore.verify import verify

from .conftest import run_cli, write_store

pytest.importorskip("jinja2")
from trajstore.sharing.card import card_texts, write_card  # noqa: E402
from trajstore.sharing.pack import pack, unpack  # noqa: E402

ADA = "Ada Lovelace <0000-0002-1825-0097; Analytical Society>"


def digest_of(path) -> str:
    with trajstore.open(path) as t:
        return content_digest(t)


def data_files(folder: Path) -> dict[str, bytes]:
    skip = {"README.md", "CITATION.cff", "datacite.json", "trajstore-manifest.json"}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


# -- description ---------------------------------------------------------------------------


def test_author_forms_and_orcid_checksum():
    assert parse_author(ADA) == {
        "name": "Ada Lovelace",
        "orcid": "0000-0002-1825-0097",
        "affiliation": "Analytical Society",
    }
    assert parse_author("Turing, Alan") == {"name": "Turing, Alan"}
    assert (
        parse_author("Grace Hopper <https://orcid.org/0000-0002-1694-233X>")["orcid"] == "0000-0002-1694-233X"
    )
    with pytest.raises(DescriptionError, match="related item 'notadoi'"):
        normalise({"related": ["notadoi"]})
    with pytest.raises(DescriptionError, match="check digit"):
        parse_author("Ada Lovelace <0000-0002-1825-0098>")  # last digit wrong
    with pytest.raises(DescriptionError, match="unknown description field"):
        normalise({"titel": "typo"})
    with pytest.raises(DescriptionError, match="SPDX"):
        normalise({"license": "my own licence"})


def test_create_with_description_and_id(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    write_store(path, n_records=5, dataset={"title": "T", "authors": [ADA], "license": "CC-BY-4.0"})
    with trajstore.open(path) as t:
        assert t.spec_version == "1.2"
        assert uuid.UUID(t.store_id)
        assert t.dataset["authors"][0]["orcid"] == "0000-0002-1825-0097"
    assert validate(path).valid


def test_validate_names_a_malformed_description(tmp_path):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=5)
    root = zarr.open_group(str(path), mode="r+")
    root.attrs.update({"dataset": {"authors": "Ada"}, "store_id": "not-a-uuid"})
    problems = validate(path).problems
    assert any("dataset" in p and "authors" in p for p in problems), problems
    assert any("store_id" in p for p in problems), problems


def test_annotate_changes_description_not_data(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    write_store(path, n_records=20)
    before = digest_of(path)
    files = data_files(path) if path.is_dir() else None
    annotate(path, {"title": "Digits", "keywords": ["sgd"]}, metadata={"lr": "0.1"})
    annotate(path, {"keywords": None, "license": "MIT"})
    with trajstore.open(path) as t:
        assert t.dataset == {"title": "Digits", "license": "MIT"}
        assert t.metadata["lr"] == "0.1" and t.metadata["lab"] == "test"
    assert digest_of(path) == before
    if files is not None:  # only the root zarr.json changed
        after = data_files(path)
        changed = [k for k in files if files[k] != after[k]]
        assert changed == ["zarr.json"]


def test_annotate_refused_while_another_process_writes(tmp_path):
    path = tmp_path / "live.zarr"
    code = (
        "import sys, time, trajstore\n"
        f"w = trajstore.create({str(path)!r}, {{'w': (3,)}})\n"
        "w.append(0, [0.0, 1.0, 2.0]); w.flush(); print('ready', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        p = run_cli("annotate", path, "--title", "x")
        assert p.returncode == 1
        assert p.stderr.count("\n") == 1 and "being written by another process" in p.stderr
    finally:
        writer.kill()
        writer.wait()
    # The writer died without closing: the kernel released its lock, so annotate goes ahead.
    p = run_cli("annotate", path, "--title", "x")
    assert p.returncode == 0, p.stderr


def test_annotate_cli_rejects_bad_input_in_one_line(tmp_path):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=5)
    for args, words in [
        (["--author", "Ada <0000-0002-1825-0098>"], "not a valid ORCID"),
        (["--license", "Not-A-Licence-1.0"], "SPDX"),
        (["--meta", "novalue"], "KEY=VALUE"),
        ([], "nothing to change"),
    ]:
        p = run_cli("annotate", path, *args)
        assert p.returncode != 0, args
        assert words in p.stderr and "Traceback" not in p.stderr, p.stderr


# -- content digest, manifest, verify --------------------------------------------------------


def test_content_digest_ignores_backend_and_chunking_but_not_values(tmp_path):
    a = tmp_path / "a.zarr"
    write_store(a, n_records=30, chunk_records=7)
    b = tmp_path / "b.zarr"
    write_store(b, n_records=30, chunk_records=16)
    convert(a, tmp_path / "a.h5")
    assert digest_of(a) == digest_of(b) == digest_of(tmp_path / "a.h5")
    with trajstore.open(a) as t:
        layout, steps, w = t.layout, t.steps, t.weights[:]

    def weights_only(path, values) -> str:
        with trajstore.create(path, layout) as wr:
            for step, row in zip(steps, values, strict=True):
                wr.append(int(step), row)
        return digest_of(path)

    same = weights_only(tmp_path / "c.zarr", w)
    assert weights_only(tmp_path / "c2.h5", w) == same
    w[3, 5] = np.nextafter(w[3, 5], np.float32(np.inf), dtype=np.float32)  # one ulp of one value
    assert weights_only(tmp_path / "d.zarr", w) != same


def test_convert_names_its_source(tmp_path):
    src = tmp_path / "a.zarr"
    write_store(src, n_records=5)
    write_manifest(str(src))
    convert(src, tmp_path / "a.h5")
    with trajstore.open(src) as s, trajstore.open(tmp_path / "a.h5") as d:
        assert d.store_id != s.store_id
        assert d.derived_from["store_id"] == s.store_id
        assert d.derived_from["operation"] == "convert"
        assert d.derived_from["content_digest"] == content_digest(s)


def test_verify_names_missing_extra_and_altered_files(tmp_path):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=40)
    write_manifest(str(path))
    assert verify(path).ok
    shard = sorted(p for p in (path / "weights" / "value" / "c").rglob("*") if p.is_file())[0]
    shard.unlink()
    (path / "weights" / "stray.bin").write_bytes(b"x")
    step = path / "weights" / "step" / "c" / "0"
    data = bytearray(step.read_bytes())
    data[-5] ^= 0xFF
    step.write_bytes(bytes(data))
    report = verify(path)
    text = "\n".join(report.problems)
    assert f"missing file weights/value/{shard.relative_to(path / 'weights' / 'value')}" in text
    assert "extra file weights/stray.bin" in text
    assert "altered file weights/step/c/0" in text
    p = run_cli("verify", path)
    assert p.returncode == 1 and "missing file" in p.stdout


def test_verify_hdf5_with_sidecar_manifest(tmp_path):
    path = tmp_path / "run.h5"
    write_store(path, n_records=20)
    assert Path(write_manifest(str(path))).name == "run.h5.trajstore-manifest.json"
    report = verify(path)
    assert report.ok and report.files_checked == 1
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    assert any("altered file run.h5" in p for p in verify(path).problems)


def test_verify_without_manifest_warns(tmp_path):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=5)
    report = verify(path)
    assert report.ok and any("no manifest" in w for w in report.warnings)


# -- packages --------------------------------------------------------------------------------


def test_pack_is_stored_readable_and_unpacks_bit_identically(tmp_path, suffix):
    src = tmp_path / f"run{suffix}"
    w, steps = write_store(src, n_records=40, dataset={"title": "Packed", "authors": [ADA]})
    out = tmp_path / "run.trajstore.zip"
    manifest = pack(str(src), str(out))
    with zipfile.ZipFile(out) as z:
        infos = z.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        names = {i.filename for i in infos}
    assert {"zarr.json", "README.md", "CITATION.cff", "datacite.json", "trajstore-manifest.json"} <= names
    with trajstore.open(out) as t:
        np.testing.assert_array_equal(t.weights[5:17, 3:20], w[5:17, 3:20])
        np.testing.assert_array_equal(t.steps, steps)
        assert t.dataset["title"] == "Packed"
        assert manifest["content_digest"] == content_digest(t)
    assert validate(out).valid
    assert verify(out).ok
    for command in (["info", out], ["validate", out], ["verify", out]):
        p = run_cli(*command)
        assert p.returncode == 0, p.stderr
    back = tmp_path / "back.zarr"
    unpack(str(out), str(back))
    if suffix == ".zarr":
        original, restored = data_files(src), data_files(back)
        assert original == restored
    assert digest_of(back) == manifest["content_digest"]
    convert(out, tmp_path / "again.h5")
    assert digest_of(tmp_path / "again.h5") == manifest["content_digest"]


def test_package_cannot_be_written_into(tmp_path):
    src = tmp_path / "run.zarr"
    write_store(src, n_records=5)
    out = tmp_path / "run.zip"
    pack(str(src), str(out))
    with pytest.raises(trajstore.TrajstoreError, match="pack"):
        trajstore.create(out, 3)
    with pytest.raises(trajstore.TrajstoreError, match="annotate"):
        annotate(out, {"title": "x"})
    with pytest.raises(trajstore.TrajstoreError, match="inside"):
        pack(str(src), str(src / "x.zip"))


def _zip_with(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/escape.txt", "a/../../escape.txt"])
def test_unpack_refuses_entries_that_leave_the_destination(tmp_path, evil):
    package = tmp_path / "evil.zip"
    _zip_with(package, {"trajstore-manifest.json": b'{"files": []}', evil: b"x"})
    dest = tmp_path / "sub" / "out.zarr"
    dest.parent.mkdir()
    p = run_cli("unpack", package, "-o", dest)
    assert p.returncode == 1 and "outside the destination" in p.stderr and "Traceback" not in p.stderr
    assert not dest.exists() and not (tmp_path / "escape.txt").exists()
    assert not list(dest.parent.iterdir())


def test_unpack_refuses_a_package_that_does_not_match_its_manifest(tmp_path):
    src = tmp_path / "run.zarr"
    write_store(src, n_records=10)
    good = tmp_path / "good.zip"
    pack(str(src), str(good))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "weights/step/c/0":
                data = data[:-1] + bytes([data[-1] ^ 1])
            zout.writestr(info, data)
    p = run_cli("unpack", bad, "-o", tmp_path / "out.zarr")
    assert p.returncode == 1 and "altered file weights/step/c/0" in p.stderr
    assert not (tmp_path / "out.zarr").exists()
    truncated = tmp_path / "trunc.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for command in (["info", truncated], ["unpack", truncated, "-o", tmp_path / "t.zarr"]):
        p = run_cli(*command)
        assert p.returncode == 1 and "not a zip file" in p.stderr and "Traceback" not in p.stderr


def test_unpack_never_replaces_what_is_not_a_store(tmp_path):
    src = tmp_path / "run.zarr"
    write_store(src, n_records=5)
    pkg = tmp_path / "run.zip"
    pack(str(src), str(pkg))
    precious = tmp_path / "thesis.zarr"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(trajstore.TrajstoreError, match="not a trajstore store"):
        unpack(str(pkg), str(precious), overwrite=True)
    assert (precious / "chapter1.tex").read_text() == "years of work"


# -- dataset card ----------------------------------------------------------------------------


def assert_valid_cff(path: Path) -> None:
    """CITATION.cff validated by cffconvert (the CFF project's own validator)."""
    cffconvert = shutil.which("cffconvert", path=os.path.dirname(sys.executable))
    if cffconvert is None:
        pytest.skip("cffconvert is not installed (dev extra)")
    p = subprocess.run([cffconvert, "--validate", "-i", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_card_files_are_valid_and_their_code_runs(tmp_path):
    path = tmp_path / "run.zarr"
    write_store(
        path,
        n_records=12,
        dataset={
            "title": "Digits CNN, SGD",
            "description": "Every step of a small CNN.",
            "authors": [ADA, "Turing, Alan"],
            "license": "CC-BY-4.0",
            "keywords": ["anomalous diffusion"],
            "related": ["10.1016/j.neunet.2022.01.016"],
        },
    )
    paths = write_card(str(path))
    assert sorted(Path(p).name for p in paths) == ["CITATION.cff", "README.md", "datacite.json"]
    assert_valid_cff(path / "CITATION.cff")
    cff = yaml.safe_load((path / "CITATION.cff").read_text())
    assert cff["authors"][0] == {
        "family-names": "Lovelace",
        "given-names": "Ada",
        "orcid": "https://orcid.org/0000-0002-1825-0097",
        "affiliation": "Analytical Society",
    }
    assert cff["authors"][1]["family-names"] == "Turing"
    readme = (path / "README.md").read_text()
    front = yaml.safe_load(readme.split("---\n")[1])
    assert front["license"] == "cc-by-4.0" and "anomalous diffusion" in front["tags"]
    snippet = readme.split("```python\n")[1].split("```")[0]
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(snippet, "README.md", "exec"), scope)  # the card's own plain-zarr example
    finally:
        os.chdir(cwd)
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(scope["weights"], t.weights[:])
        np.testing.assert_array_equal(scope["tensor"], t.tensor(t.layout.names[0])[:])
    dc = json.loads((path / "datacite.json").read_text())
    assert dc["types"]["resourceTypeGeneral"] == "Dataset"
    assert dc["creators"][0]["nameIdentifiers"][0]["nameIdentifierScheme"] == "ORCID"
    assert dc["rightsList"][0]["rightsIdentifier"] == "CC-BY-4.0"
    assert dc["relatedIdentifiers"][0]["relatedIdentifierType"] == "DOI"


def test_card_without_description_says_so(tmp_path):
    path = tmp_path / "run.h5"
    write_store(path, n_records=4)
    with trajstore.open(path) as t:
        texts = card_texts(t)
    assert "No description was recorded" in texts["README.md"]
    assert "no author recorded" in texts["CITATION.cff"]
    (tmp_path / "CITATION.cff").write_text(texts["CITATION.cff"])
    assert_valid_cff(tmp_path / "CITATION.cff")


@pytest.mark.slow
def test_record_takes_the_description(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
    out = tmp_path / "d.zarr"
    args = ["--title", "Digits", "--author", ADA, "--license", "CC0-1.0", "--meta", "sweep=lr"]
    p = run_cli("record", "-o", out, *args, script, "--", "--epochs", "1", "--quiet")
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.dataset["license"] == "CC0-1.0" and t.dataset["authors"][0]["name"] == "Ada Lovelace"
        assert t.metadata["sweep"] == "lr"
    start = time.monotonic()
    p = run_cli("record", "-o", tmp_path / "e.zarr", "--license", "nonsense licence", script)
    assert p.returncode != 0 and "SPDX" in p.stderr
    assert time.monotonic() - start < 30 and not (tmp_path / "e.zarr").exists()


@pytest.mark.slow
def test_sharing_page_runs_as_shown(tmp_path):
    """Every command line of docs/sharing.md runs and exits 0, in order; then its Python."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "sharing.md").read_text()
    lines = [
        ln for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for ln in b.splitlines() if ln.strip()
    ]
    assert len(lines) >= 5
    (tmp_path / "examples").symlink_to(root / "examples")
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "trajstore"
        p = run_cli(*argv[1:], cwd=tmp_path)
        assert p.returncode == 0, (line, p.stderr)
    with trajstore.open(tmp_path / "received.zarr") as t:
        assert t.dataset["authors"][1]["name"] == "Turing, Alan"
    with trajstore.open(tmp_path / "first-layer.zarr") as t:
        assert t.layout.names == ["features.0.weight", "features.0.bias"]
        assert list(t.steps) == list(range(0, 40, 2))
    assert "received.zarr" in (tmp_path / "catalog.html").read_text()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for src in re.findall(r"```python\n(.*?)```", text, flags=re.S):
            exec(compile(src, "sharing.md", "exec"), {})
    finally:
        os.chdir(cwd)


# -- extract ---------------------------------------------------------------------------------


def test_extract_selects_steps_and_tensors_and_names_its_source(tmp_path, suffix):
    from trajstore.extract import extract

    src = tmp_path / f"run{suffix}"
    w, steps = write_store(src, n_records=50)  # steps 0, 2, ..., 98
    out = tmp_path / "sub.zarr"
    extract(src, out, steps="10:61:10", tensors=["fc.*"], exclude=["*.bias"])
    with trajstore.open(src) as s, trajstore.open(out) as d:
        keep = (steps >= 10) & (steps < 61) & ((steps - 10) % 10 == 0)
        np.testing.assert_array_equal(d.steps, steps[keep])
        assert d.layout.names == ["fc.weight"]
        fc = s.layout["fc.weight"]
        np.testing.assert_array_equal(d.weights[:], w[keep][:, fc.offset : fc.stop])
        loss_steps, _ = d.observable("loss")
        assert loss_steps.min() >= 10 and loss_steps.max() < 61 and len(loss_steps) == 26
        assert d.derived_from["store_id"] == s.store_id
        assert d.derived_from["operation"] == "extract"
        assert d.derived_from["selection"]["tensors"] == ["fc.*"]
    assert validate(out).valid


def test_extract_bitround_is_recorded_and_bad_selections_refused(tmp_path):
    from trajstore.extract import extract

    src = tmp_path / "run.zarr"
    w, _ = write_store(src, n_records=10)
    extract(src, tmp_path / "r.zarr", keepbits=7)
    with trajstore.open(tmp_path / "r.zarr") as t:
        assert t.lossy["keepbits"] == 7
        got = t.weights[:]
    assert not np.array_equal(got, w) and np.allclose(got, w, rtol=2**-7)
    for args, words in [
        (["--steps", "5"], "START:STOP"),
        (["--steps", "500:600"], "select none"),
        (["--tensors", "nope.*"], "match no tensor"),
    ]:
        p = run_cli("extract", src, "-o", tmp_path / "x.zarr", *args)
        assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not (tmp_path / "x.zarr").exists()


# -- catalog ---------------------------------------------------------------------------------


def test_catalog_over_a_sweep(tmp_path):
    from trajstore.sharing.catalog import catalog

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for i, lr in enumerate((0.01, 0.1)):
        prov = {"seed": i, "optimizer_class": "torch.optim.sgd.SGD", "optimizer": [{"lr": lr}]}
        dataset = {"title": f"lr {lr}", "license": "CC0-1.0"}
        with trajstore.create(sweep / f"lr{lr}.zarr", 4, provenance=prov, dataset=dataset) as w:
            for step in range(10 + i):
                w.append(step, np.full(4, step, dtype=np.float32))
    (sweep / "sub").mkdir()
    write_store(sweep / "sub" / "h.h5", n_records=5)
    (sweep / "lr0.1-report").mkdir()
    (sweep / "lr0.1-report" / "summary.json").write_text(
        json.dumps({"windows": [{"alpha": 1.21, "tau0": None}]})
    )
    (sweep / "broken.zarr").mkdir()
    (sweep / "broken.zarr" / "zarr.json").write_text('{"attributes": {"spec_name": "trajstore"}}')
    rows = {Path(r["store"]).name: r for r in catalog([str(sweep)])}
    assert set(rows) == {"lr0.01.zarr", "lr0.1.zarr", "h.h5", "broken.zarr"}
    assert rows["lr0.1.zarr"]["lr"] == 0.1 and rows["lr0.1.zarr"]["records"] == 11
    assert rows["lr0.1.zarr"]["alpha"] == 1.21 and rows["lr0.01.zarr"]["alpha"] is None
    assert rows["lr0.01.zarr"]["license"] == "CC0-1.0" and rows["lr0.01.zarr"]["title"] == "lr 0.01"
    assert rows["broken.zarr"]["error"] and rows["broken.zarr"]["records"] is None
    for fmt in ("csv", "json", "html"):
        out = tmp_path / f"catalog.{fmt}"
        p = run_cli("catalog", sweep, "-o", out)
        assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "catalog.json").read_text())[0]["store"].endswith(".zarr")
    assert (tmp_path / "catalog.csv").read_text().splitlines()[0].startswith("store,title,model")
    assert "<table>" in (tmp_path / "catalog.html").read_text()
    p = run_cli("catalog", sweep)
    assert p.returncode == 0 and "lr 0.1" in p.stdout
    p = run_cli("catalog", tmp_path / "nowhere")
    assert p.returncode == 1 and "no such store or folder" in p.stderr


def test_a_flipped_byte_in_a_package_is_named_never_a_traceback(tmp_path):
    src = tmp_path / "run.zarr"
    write_store(src, n_records=40)
    pkg = tmp_path / "run.zip"
    pack(str(src), str(pkg))
    with zipfile.ZipFile(pkg) as z:
        info = z.getinfo("weights/value/c/1/0")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(pkg.read_bytes())
    data[start + info.file_size // 2] ^= 0xFF  # inside the stored entry: its CRC-32 now fails
    bad = tmp_path / "flip.zip"
    bad.write_bytes(bytes(data))
    p = run_cli("verify", bad)
    assert p.returncode == 1 and "altered file weights/value/c/1/0" in p.stdout, p.stdout + p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    for command in (["info", bad, "--scan"], ["unpack", bad, "-o", tmp_path / "u.zarr"]):
        p = run_cli(*command)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1 and "damaged" in p.stderr, p.stderr
    with pytest.raises(trajstore.TrajstoreError, match="damaged"), trajstore.open(bad) as t:
        t.weights[:]


def test_analysis_of_a_lossy_store_says_so(tmp_path):
    from trajstore.analysis.pipeline import analyze

    from trajstore.extract import extract

    src = tmp_path / "run.zarr"
    write_store(src, n_records=60)
    extract(src, tmp_path / "r.zarr", keepbits=3)
    with trajstore.open(tmp_path / "r.zarr") as t:
        a = analyze(t, 30, progress=False)
    assert a.summary()["lossy"]["keepbits"] == 3
    assert any("lossy" in n and "3 mantissa bits" in n for n in a.notes)
    with trajstore.open(src) as t:
        assert not any("lossy" in n for n in analyze(t, 30, progress=False).notes)
