"""Optimisation profiles and buffer sizing."""

from __future__ import annotations

import pytest
import torch

from tests.trt_engines.toy_graph import INPUTS
from trt_engines.engine import TensorSpec
from trt_engines.profiles import (
    BatchRange,
    ShapeRange,
    buffer_bytes,
    buffer_view,
    check_in_profile,
    largest_shapes,
    profile_for,
    profile_key,
)


def test_profile_from_specs_and_batch_range():
    profile = profile_for(INPUTS, BatchRange(min=1, opt=2, max=4))
    assert profile["feat"] == ShapeRange((1, 4, 8, 8), (2, 4, 8, 8), (4, 4, 8, 8))
    assert profile["latent"] == ShapeRange((1, 6), (2, 6), (4, 6))


def test_static_inputs_get_no_profile_entry_but_a_buffer_shape():
    specs = (*INPUTS, TensorSpec("q", (6, 5), torch.float32))
    profile = profile_for(specs, BatchRange(max=3))
    assert "q" not in profile
    assert largest_shapes(specs, profile) == {"feat": (3, 4, 8, 8), "latent": (3, 6), "q": (6, 5)}


def test_dynamic_non_batch_dims_are_refused():
    with pytest.raises(ValueError, match="only a dynamic batch"):
        profile_for([TensorSpec("x", (1, None), torch.float32)], BatchRange())
    with pytest.raises(ValueError, match="no profile entry"):
        largest_shapes(INPUTS, {})


@pytest.mark.parametrize(("lo", "opt", "hi"), [(0, 1, 2), (2, 1, 3), (1, 4, 3)])
def test_bad_batch_ranges(lo, opt, hi):
    with pytest.raises(ValueError, match="batch range"):
        BatchRange(lo, opt, hi)


def test_shape_range_validation_and_membership():
    with pytest.raises(ValueError):
        ShapeRange((2, 3), (1, 3), (4, 3))
    rng = ShapeRange((1, 3), (2, 3), (4, 3))
    assert rng.contains((4, 3)) and not rng.contains((5, 3)) and not rng.contains((2, 3, 1))
    check_in_profile("x", (1, 3), rng)
    with pytest.raises(ValueError, match=r"'x' has shape \(5, 3\), outside.*max \(4, 3\)"):
        check_in_profile("x", (5, 3), rng)


def test_profile_key_is_sorted_and_json_ready():
    profile = profile_for(INPUTS[::-1], BatchRange(1, 1, 2))
    key = profile_key(profile)
    assert list(key) == ["feat", "latent"]
    assert key["latent"] == [[1, 6], [1, 6], [2, 6]]


def test_buffer_sizing_and_views_share_the_base_pointer():
    assert buffer_bytes((4, 3, 2), torch.float16) == 48
    buf = torch.zeros(4, 3, 2)
    view = buffer_view(buf, (2, 3, 2))
    assert view.data_ptr() == buf.data_ptr() and view.shape == (2, 3, 2)
    view.fill_(1)
    assert buf[:2].sum() == 12 and buf[2:].sum() == 0
    # any dynamic dim works, not only the batch
    assert buffer_view(buf, (4, 6)).shape == (4, 6)
    with pytest.raises(ValueError, match="cannot hold"):
        buffer_view(buf, (5, 3, 2))
    with pytest.raises(ValueError, match="cannot hold"):
        buffer_view(buf[:, 1:], (1,))
