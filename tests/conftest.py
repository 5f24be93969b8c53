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

# One compilation cache for the whole run (every xdist worker, every test): tests build the
# same solvers and generators on the same shapes many times over, and XLA's compile, not the
# run, is most of their time. Set WBBGEN_TEST_JAX_CACHE= (empty) to turn it off.
_cache = os.environ.get("WBBGEN_TEST_JAX_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
if _cache:
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
