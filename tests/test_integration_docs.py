"""The code of docs/integrations.md runs as shown (one block per framework)."""

from __future__ import annotations

import pytest

from .integration_support import require
from .test_docs import blocks

PAGE = "integrations.md"


FRAMEWORKS = [(0, "lightning.pytorch", "lightning"), (1, "transformers", "hf")]


@pytest.mark.parametrize(("index", "module", "extra"), FRAMEWORKS)
def test_integration_page_code_runs(index, module, extra, tmp_path, monkeypatch):
    require(module, extra)
    if extra == "hf":
        require("accelerate", extra)
    monkeypatch.chdir(tmp_path)
    code = blocks(PAGE)
    assert len(code) == 2, f"{PAGE} shows {len(code)} code blocks, the test expects 2"
    exec(compile(code[index], PAGE, "exec"), {})
