"""Single-query attention and the small helpers the attention chapters use.

One query ``q`` looks at ``n`` keys ``k_i`` (the rows of ``keys``) and mixes the
matching values ``v_i`` (the rows of ``values``)::

    alpha = softmax(keys @ q)        # one weight per key, summing to one
    c     = sum_i alpha_i * v_i      # = alpha @ values

Everything is plain numpy in float64. Leading batch dimensions are allowed, so a
chapter can draw thousands of key sets and attend over all of them in one call.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "softmax",
    "sigmoid",
    "attention_weights",
    "attend",
    "self_attention",
    "orthonormal_rows",
    "sample_keys",
    "copy_weight_lower_bound",
    "two_key_average_weights",
]

Array = NDArray[np.float64]


def softmax(scores: ArrayLike, axis: int = -1) -> Array:
    """Softmax along ``axis``, stable for very large or very negative scores.

    Subtracting the maximum before exponentiating changes nothing mathematically
    but keeps every exponent at most zero, so nothing overflows.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 0:
        raise ValueError("softmax needs at least one score (got a scalar)")
    if s.shape[axis] == 0:
        raise ValueError("softmax over an empty axis is undefined")
    if np.isnan(s).any():
        raise ValueError("softmax scores contain NaN")
    shifted = s - np.max(s, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x: ArrayLike) -> Array:
    """Logistic function 1 / (1 + exp(-x)), without overflow for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1], never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_keys_query(keys: Array, query: Array) -> None:
    if keys.ndim < 2:
        raise ValueError(f"keys must have shape (..., n, d); got shape {keys.shape}")
    if query.ndim < 1:
        raise ValueError(f"query must have shape (..., d); got shape {query.shape}")
    if keys.shape[-2] == 0:
        raise ValueError("attention needs at least one key (n = 0)")
    if keys.shape[-1] != query.shape[-1]:
        raise ValueError(
            f"keys and query must share their last dimension d; "
            f"got keys {keys.shape} and query {query.shape}"
        )


def attention_weights(keys: ArrayLike, query: ArrayLike) -> Array:
    """Attention weights ``alpha = softmax(K q)``.

    ``keys`` has shape ``(..., n, d)`` and ``query`` shape ``(..., d)``; leading
    dimensions broadcast. Returns shape ``(..., n)``.
    """
    k = np.asarray(keys, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    _check_keys_query(k, q)
    scores = np.einsum("...nd,...d->...n", k, q)
    return softmax(scores, axis=-1)


def attend(keys: ArrayLike, values: ArrayLike, query: ArrayLike) -> Array:
    """Single-query attention output ``c = sum_i alpha_i v_i``.

    ``keys``: ``(..., n, d)``, ``values``: ``(..., n, d_v)``, ``query``: ``(..., d)``.
    Returns ``(..., d_v)``.
    """
    k = np.asarray(keys, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    _check_keys_query(k, q)
    if v.ndim < 2:
        raise ValueError(f"values must have shape (..., n, d_v); got shape {v.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"need one value per key: keys have n = {k.shape[-2]}, values n = {v.shape[-2]}"
        )
    alpha = attention_weights(k, q)
    return np.einsum("...n,...nv->...v", alpha, v)


def self_attention(
    x: ArrayLike,
    query_map: ArrayLike | None = None,
    key_map: ArrayLike | None = None,
    value_map: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """Self-attention of the rows of ``x`` (shape ``(n, d)``), no mask, no scaling.

    Token ``i`` has query ``Q x_i``, key ``K x_i`` and value ``V x_i``; a map left
    as ``None`` is the identity. Each output row is one single-query attention:
    ``c_i = attend(keys, values, q_i)``. Returns ``(outputs (n, d_v), weights (n, n))``
    where ``weights[i, j]`` is how much token ``i`` attends to token ``j``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
    d = x.shape[1]

    def project(m: ArrayLike | None, name: str) -> Array:
        if m is None:
            return x
        m = np.asarray(m, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != d:
            raise ValueError(f"{name} must have shape (d_out, {d}); got shape {m.shape}")
        return x @ m.T

    q = project(query_map, "query_map")
    k = project(key_map, "key_map")
    v = project(value_map, "value_map")
    if q.shape[1] != k.shape[1]:
        raise ValueError("query_map and key_map must map into the same dimension")
    weights = np.stack([attention_weights(k, qi) for qi in q])
    return weights @ v, weights


def orthonormal_rows(n: int, d: int, rng: np.random.Generator) -> Array:
    """``n`` random orthonormal vectors in R^d, as the rows of an ``(n, d)`` array.

    Drawn by QR-factorising a Gaussian matrix (with the sign fix that makes the
    result uniformly distributed). Needs ``n <= d``.
    """
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 and d >= 1; got n = {n}, d = {d}")
    if n > d:
        raise ValueError(f"at most d = {d} orthonormal vectors exist in R^{d}; asked for {n}")
    g = rng.standard_normal((d, n))
    qmat, r = np.linalg.qr(g)
    qmat = qmat * np.sign(np.diag(r))
    return qmat.T.copy()


def sample_keys(
    means: ArrayLike, covariances: ArrayLike, size: int, rng: np.random.Generator
) -> Array:
    """Draw ``size`` independent key sets with ``k_i ~ N(means[i], covariances[i])``.

    ``means`` has shape ``(n, d)`` and ``covariances`` shape ``(n, d, d)`` (or
    ``(d, d)``, shared by all keys). Returns an array of shape ``(size, n, d)``.
    """
    mu = np.asarray(means, dtype=np.float64)
    cov = np.asarray(covariances, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"means must have shape (n, d); got shape {mu.shape}")
    n, d = mu.shape
    if cov.shape == (d, d):
        cov = np.broadcast_to(cov, (n, d, d))
    if cov.shape != (n, d, d):
        raise ValueError(f"covariances must have shape ({n}, {d}, {d}) or ({d}, {d}); "
                         f"got shape {cov.shape}")
    keys = np.empty((size, n, d))
    for i in range(n):
        keys[:, i, :] = rng.multivariate_normal(mu[i], cov[i], size=size)
    return keys


def copy_weight_lower_bound(gap: ArrayLike, n: int) -> Array:
    """Lower bound ``1 / (1 + (n - 1) e^{-gap})`` on the largest weight.

    If one key's score beats each of the other ``n - 1`` scores by at least ``gap``,
    its softmax weight is at least this number.
    """
    if n < 1:
        raise ValueError(f"need n >= 1 keys; got {n}")
    g = np.asarray(gap, dtype=np.float64)
    # 1 / (1 + (n-1) e^{-g}) = sigmoid(g - log(n-1)); the sigmoid form cannot overflow.
    if n == 1:
        return np.ones_like(g)
    return sigmoid(g - math.log(n - 1))


def two_key_average_weights(t: ArrayLike, n: int) -> tuple[Array, Array]:
    """Weights when ``q = t (k_a + k_b)`` and the ``n`` keys are orthonormal.

    Returns ``(w_ab, w_other)``: ``e^t / (2 e^t + n - 2)`` for each of ``k_a, k_b``
    and ``1 / (2 e^t + n - 2)`` for every other key, computed without overflow.
    """
    if n < 2:
        raise ValueError(f"need n >= 2 keys; got {n}")
    t = np.asarray(t, dtype=np.float64)
    # Divide numerator and denominator by e^t.
    denom = 2.0 + (n - 2) * np.exp(-t)
    return 1.0 / denom, np.exp(-t) / denom
