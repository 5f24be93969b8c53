"""Offline data sets bundled with scikit-learn, split and standardised the same way everywhere
(the benchmarks, notebooks and tuning comparisons use these splits). Needs scikit-learn.

Example:
    >>> from wbbgen.datasets import breast_cancer
    >>> split = breast_cancer()
    >>> split.X_train.shape, split.X_test.shape, split.X_train.dtype.name
    ((398, 30), (171, 30), 'float32')
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Split", "ValSplit", "breast_cancer", "diabetes", "digits", "digits_small"]


class Split(NamedTuple):
    """A train / test split: standardised features, targets and the feature names."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]


class ValSplit(NamedTuple):
    """A train / validation / test split (the tuning benchmarks' layout)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _standardise(X_train, X_test):
    mu, sd = X_train.mean(0), X_train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return (X_train - mu) / sd, (X_test - mu) / sd


def breast_cancer(test_size: float = 0.3, random_state: int = 0, dtype=np.float32) -> Split:
    """Breast-cancer diagnosis (569 × 30): stratified split, features standardised on the
    training rows, y ∈ {0, 1}."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    d = load_breast_cancer()
    Xtr, Xte, ytr, yte = train_test_split(
        d.data, d.target, test_size=test_size, random_state=random_state, stratify=d.target
    )
    Xtr, Xte = _standardise(Xtr, Xte)
    return Split(Xtr.astype(dtype), ytr.astype(dtype), Xte.astype(dtype), yte.astype(dtype), list(d.feature_names))


def diabetes(test_size: int = 100, random_state: int = 0, degree: int = 1, dtype=np.float32) -> Split:
    """Diabetes progression (442 × 10), optionally with degree-2 features (p = 65),
    standardised, y centred on the training mean."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import PolynomialFeatures

    d = load_diabetes()
    X = d.data
    names = list(d.feature_names)
    if degree > 1:
        poly = PolynomialFeatures(degree, include_bias=False)
        X = poly.fit_transform(X)
        names = list(poly.get_feature_names_out(names))
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=test_size, random_state=random_state)
    Xtr, Xte = _standardise(Xtr, Xte)
    mu = ytr.mean()
    return Split(Xtr.astype(dtype), (ytr - mu).astype(dtype), Xte.astype(dtype), (yte - mu).astype(dtype), names)


def digits(test_size: float = 0.3, random_state: int = 0, dtype=np.float32) -> Split:
    """Handwritten digits (1797 × 64, an 8 × 8 stand-in for MNIST): stratified split, pixels
    standardised on the training rows (constant pixels left at 0), y ∈ {0, …, 9} as int32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(
        d.data, d.target, test_size=test_size, random_state=random_state, stratify=d.target
    )
    Xtr, Xte = _standardise(Xtr, Xte)
    names = [f"pixel_{i}" for i in range(d.data.shape[1])]
    return Split(Xtr.astype(dtype), ytr.astype(np.int32), Xte.astype(dtype), yte.astype(np.int32), names)


def digits_small(num_train: int = 600, num_val: int = 400, random_state: int = 0, dtype=np.float32) -> ValSplit:
    """The Sinha-style digits split (the MNIST-1K analogue): 1,000 images, stratified into
    ``num_train`` training and ``num_val`` validation rows, the other 797 images the test set;
    pixels standardised on the training rows; y as int32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X_rest, X_test, y_rest, y_test = train_test_split(
        d.data, d.target, train_size=num_train + num_val, random_state=random_state, stratify=d.target
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, train_size=num_train, random_state=random_state, stratify=y_rest
    )
    mu, sd = X_train.mean(0), X_train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    f = lambda X: ((X - mu) / sd).astype(dtype)  # noqa: E731
    i32 = lambda y: y.astype(np.int32)  # noqa: E731
    return ValSplit(f(X_train), i32(y_train), f(X_val), i32(y_val), f(X_test), i32(y_test))
