"""What a new user's fresh-clone trial found on the command line (bad input, damaged stores)."""

from __future__ import annotations

from .conftest import run_cli, write_store


def test_analyze_and_compare_refuse_a_report_path_that_is_a_file_before_analysing(tmp_path):
    store = tmp_path / "run.zarr"
    write_store(store, n_records=40)
    script = tmp_path / "train.py"
    script.write_text("print('mine')\n")
    for args in (["analyze", store, "-o", script], ["compare", store, "-o", script / "sub"]):
        result = run_cli(*args, "--quiet")
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "is a file, not a folder" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    assert script.read_text() == "print('mine')\n"  # left as it was
