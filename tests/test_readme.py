"""The README's example runs exactly as written."""

import re
import warnings
from pathlib import Path

import pytest

from wbbgen.training import FidelityWarning, check_fidelity

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.pipeline  # 3000 training steps: `make test-pipeline` (CI runs it)
def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    # The README says the guard may warn: a FidelityWarning is expected exactly when the
    # closing check flags a value; no other warning is.
    kinds = {type(w.message) for w in caught}
    assert kinds <= {FidelityWarning}, [str(w.message) for w in caught]
    flagged = any(check_fidelity(namespace["result"].fidelity))
    assert (FidelityWarning in kinds) == flagged
    samples, exact, idata = namespace["samples"], namespace["exact"], namespace["idata"]
    assert samples["beta"].shape == (20, 1000, 30)
    assert exact["beta"].shape == (4, 1000, 30)
    assert idata.posterior["beta"].sel(lam=1.0, method="nearest").shape == (1, 1000, 30)
    assert len(capsys.readouterr().out.strip().split()) >= 3
