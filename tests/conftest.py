"""Test configuration: x64 so tolerances reflect the algorithms, not float32 rounding (one
module, test_float32.py, runs in float32 on purpose); Agg plots. (Strict rank promotion is
not set: NumPyro distributions and user models broadcast by rank, e.g. loc (p,) vs y (n, p).)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
