"""Test configuration shared by every test module.

* x64 on, so tolerances reflect the algorithms, not float32 rounding. One module,
  ``tests/test_float32.py``, runs its tests in float32 on purpose, each inside
  ``jax.enable_x64(False)``: the float32 pass users get on GPUs.
* Matplotlib's Agg backend (no display needed).

Strict rank promotion is not set: NumPyro distributions and user models broadcast by rank
(e.g. loc ``(p,)`` against y ``(n, p)``). Warnings are errors (``filterwarnings`` in
pyproject.toml lists each one ignored).
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
