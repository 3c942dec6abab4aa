"""The code shown in docs/ runs as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


@pytest.mark.parametrize("page", ["api.md", "analysis.md"])
def test_doc_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks(page)
    assert code, f"{page} shows no code"
    ns: dict = {}
    for src in code:
        exec(compile(src, f"{page}", "exec"), ns)


def test_cli_page_commands_run(tmp_path):
    """Every command line shown in docs/cli.md runs and exits 0, in order."""
    import shlex
    import subprocess
    import sys

    root = DOCS.parent
    text = (DOCS / "cli.md").read_text()
    lines = [
        ln for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for ln in b.splitlines() if ln.strip()
    ]
    assert len(lines) >= 6
    # output shown as "$ COMMAND" then lines it prints (a line ending in " ..." is cut short)
    shown = dict(re.findall(r"```text\n\$ (trajstore [^\n]*)\n(.*?)```", text, flags=re.S))
    assert shown and set(shown) <= set(lines), shown
    (tmp_path / "examples").symlink_to(root / "examples")
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "trajstore"
        p = subprocess.run(
            [sys.executable, "-m", "trajstore.cli.main", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, (line, p.stderr)
        printed = p.stdout.splitlines()
        for want in shown.get(line, "").splitlines():
            cut = want.endswith(" ...")
            assert any(o.startswith(want[:-4]) if cut else o == want for o in printed), (line, want, p.stdout)
        if "--json" in argv:  # strict JSON that follows the command's schema
            from .test_cli_output import assert_matches, strict

            assert_matches(argv[1], strict(p.stdout))
