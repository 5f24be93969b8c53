"""The README's example runs exactly as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    samples, exact, idata = namespace["samples"], namespace["exact"], namespace["idata"]
    assert samples["beta"].shape == (20, 1000, 30)
    assert exact["beta"].shape == (4, 1000, 30)
    assert idata.posterior["beta"].sel(lam=1.0, method="nearest").shape == (1, 1000, 30)
    assert len(capsys.readouterr().out.strip().split()) >= 3
