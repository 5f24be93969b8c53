"""Every Python example of docs/howto/models.md runs as written (small sizes), each in a fresh
namespace: the page's claims about deterministic sites, masks, factors, data-dependent shapes,
non-centred models and data types are checked by the asserts inside the examples."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.pipeline  # end to end: `make test-pipeline` (CI runs it)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "howto" / "models.md"
_BLOCK = re.compile(r"^## (?P<section>.+?)$|^```python\n(?P<code>.*?)^```$", re.M | re.S)


def _examples() -> list[tuple[str, str]]:
    section, out = "intro", []
    for m in _BLOCK.finditer(PAGE.read_text(encoding="utf-8")):
        if m.group("section"):
            section = m.group("section")
        else:
            out.append((section, m.group("code")))
    return out


EXAMPLES = _examples()


def test_the_page_has_an_example_per_topic():
    sections = {s for s, _ in EXAMPLES}
    for topic in ("Deterministic", "Masked", "Factors", "Shapes from data", "Hierarchical", "lists and pandas"):
        assert any(topic in s for s in sections), topic


@pytest.mark.parametrize("code", [c for _, c in EXAMPLES], ids=[f"{i}-{s[:24]}" for i, (s, _) in enumerate(EXAMPLES)])
def test_example_runs(code):
    exec(compile(code, str(PAGE), "exec"), {"__name__": "howto_models"})
