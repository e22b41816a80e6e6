"""Unit tests of lib.demos.single_query with exact or known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lib.demos.single_query import (
    attend,
    attention_weights,
    copy_weight_lower_bound,
    orthonormal_rows,
    sample_keys,
    self_attention,
    sigmoid,
    softmax,
    two_key_average_weights,
)


# --- softmax -----------------------------------------------------------------------------
def test_softmax_known_values():
    p = softmax([0.0, math.log(3.0)])
    np.testing.assert_allclose(p, [0.25, 0.75], rtol=1e-15)


def test_softmax_is_shift_invariant_and_sums_to_one():
    s = np.array([0.3, -1.2, 2.5, 0.0])
    np.testing.assert_allclose(softmax(s), softmax(s + 123.4), rtol=1e-12)
    assert softmax(s).sum() == pytest.approx(1.0, abs=1e-15)


def test_softmax_stable_for_huge_scores():
    p = softmax([1000.0, 1000.0, -1000.0])
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0], atol=1e-300)
    p = softmax([-1e308, -1e308])
    np.testing.assert_allclose(p, [0.5, 0.5])
    p = softmax([1e308, 0.0])
    np.testing.assert_allclose(p, [1.0, 0.0])


def test_softmax_along_axis():
    s = np.array([[0.0, 0.0], [0.0, math.log(3.0)]])
    np.testing.assert_allclose(softmax(s, axis=1), [[0.5, 0.5], [0.25, 0.75]])
    np.testing.assert_allclose(softmax(s, axis=0)[:, 1], [0.25, 0.75])


def test_softmax_rejects_bad_input():
    with pytest.raises(ValueError, match="scalar"):
        softmax(1.0)
    with pytest.raises(ValueError, match="empty"):
        softmax([])
    with pytest.raises(ValueError, match="NaN"):
        softmax([0.0, float("nan")])


def test_sigmoid_known_values_and_no_overflow():
    np.testing.assert_allclose(sigmoid([0.0, math.log(3.0), -math.log(3.0)]), [0.5, 0.75, 0.25])
    with np.errstate(over="raise"):
        np.testing.assert_allclose(sigmoid([1e4, -1e4]), [1.0, 0.0])


# --- attention ---------------------------------------------------------------------------
def test_equal_scores_give_the_mean_of_the_values():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    values = np.array([[3.0, 0.0], [0.0, 6.0], [3.0, 3.0]])
    c = attend(keys, values, np.zeros(2))  # every score is 0
    np.testing.assert_allclose(c, values.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(attention_weights(keys, np.zeros(2)), [1 / 3] * 3)


def test_two_keys_known_weights():
    # scores 0 and log 3 -> weights 1/4 and 3/4
    keys = np.array([[0.0], [1.0]])
    values = np.array([[4.0], [8.0]])
    c = attend(keys, values, np.array([math.log(3.0)]))
    np.testing.assert_allclose(c, [0.25 * 4 + 0.75 * 8])


def test_huge_gap_copies_the_winning_value():
    keys = np.eye(4)
    values = np.arange(12.0).reshape(4, 3)
    c = attend(keys, values, 1e6 * keys[2])  # would overflow a naive softmax
    assert np.all(np.isfinite(c))
    np.testing.assert_array_equal(c, values[2])


def test_batched_attention_matches_loop():
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((7, 5, 3))
    values = rng.standard_normal((5, 2))  # shared by the batch
    queries = rng.standard_normal((7, 3))
    batched = attend(keys, values, queries)
    looped = np.stack([attend(k, values, q) for k, q in zip(keys, queries, strict=True)])
    np.testing.assert_allclose(batched, looped, rtol=1e-12)


@pytest.mark.parametrize(
    ("keys_shape", "values_shape", "query_shape", "message"),
    [
        ((3,), (3, 2), (3,), "keys must have shape"),
        ((3, 4), (3, 2), (5,), "last dimension"),
        ((3, 4), (2, 2), (4,), "one value per key"),
        ((3, 4), (3,), (4,), "values must have shape"),
        ((0, 4), (0, 2), (4,), "at least one key"),
        ((3, 4), (3, 2), (), "query must have shape"),
    ],
)
def test_shape_errors_are_clear(keys_shape, values_shape, query_shape, message):
    with pytest.raises(ValueError, match=message):
        attend(np.ones(keys_shape), np.ones(values_shape), np.ones(query_shape))


def test_self_attention_identity_maps_and_projections():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    out, w = self_attention(x)
    e = math.e
    np.testing.assert_allclose(w, [[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]])
    np.testing.assert_allclose(out, w @ x)
    # a zero query map makes every token average all values
    out, w = self_attention(x, query_map=np.zeros((2, 2)), value_map=2 * np.eye(2))
    np.testing.assert_allclose(w, 0.5)
    np.testing.assert_allclose(out, [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="key_map must have shape"):
        self_attention(x, key_map=np.eye(3))
    with pytest.raises(ValueError, match="x must have shape"):
        self_attention(np.ones(3))


# --- helpers -------------------------------------------------------------------------
def test_orthonormal_rows():
    rng = np.random.default_rng(1)
    u = orthonormal_rows(4, 6, rng)
    assert u.shape == (4, 6)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="at most d"):
        orthonormal_rows(7, 6, rng)


def test_sample_keys_shapes_and_moments():
    rng = np.random.default_rng(2)
    means = np.eye(2, 3)
    cov = np.stack([0.01 * np.eye(3), np.diag([0.5, 0.0, 0.0])])
    keys = sample_keys(means, cov, 20000, rng)
    assert keys.shape == (20000, 2, 3)
    np.testing.assert_allclose(keys.mean(axis=0), means, atol=0.02)
    assert keys[:, 1, 0].var() == pytest.approx(0.5, rel=0.05)
    np.testing.assert_allclose(keys[:, 1, 1:], np.broadcast_to(means[1, 1:], (20000, 2)), atol=1e-12)
    with pytest.raises(ValueError, match="covariances must have shape"):
        sample_keys(means, np.eye(2), 5, rng)


def test_copy_bound_is_attained_by_equal_runner_ups():
    n, gap = 5, 2.0
    scores = np.array([gap, 0.0, 0.0, 0.0, 0.0])
    assert softmax(scores)[0] == pytest.approx(float(copy_weight_lower_bound(gap, n)), rel=1e-14)
    assert copy_weight_lower_bound(gap, n) == pytest.approx(1 / (1 + 4 * math.exp(-2)))
    assert copy_weight_lower_bound(1e4, 10) == 1.0
    np.testing.assert_allclose(copy_weight_lower_bound([0.0, 3.0], 1), [1.0, 1.0])


def test_two_key_average_weights_match_attention():
    n, t = 6, 1.5
    keys = np.eye(n)
    w_ab, w_other = two_key_average_weights(t, n)
    alpha = attention_weights(keys, t * (keys[0] + keys[1]))
    np.testing.assert_allclose(alpha[:2], w_ab, rtol=1e-14)
    np.testing.assert_allclose(alpha[2:], w_other, rtol=1e-14)
    assert 2 * w_ab + (n - 2) * w_other == pytest.approx(1.0)
    assert two_key_average_weights(1e4, n)[0] == pytest.approx(0.5)
