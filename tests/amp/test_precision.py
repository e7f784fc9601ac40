"""ember.amp.converted_copy / rounded_copy: the two ways the bit-reduction experiment lowers precision."""

from __future__ import annotations

import numpy as np
import pytest

import ember as em


def _model():
    return em.models.SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 3, "filter_size": 3},
                                   hidden_size=7, weight_init_std="he")


def test_converted_copy_changes_dtype_and_leaves_the_original():
    model = _model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    half = em.amp.converted_copy(model, em.float16)
    for k, v in half.state_dict().items():
        assert v.dtype == em.float16, k
        np.testing.assert_array_equal(v.numpy(), before[k].astype(np.float16), err_msg=k)
    for k, v in model.state_dict().items():
        assert v.dtype == em.float32
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    x = em.randn(2, 1, 8, 8)
    with em.no_grad():
        assert half(x.half()).dtype == em.float16 and model(x).dtype == em.float32


def test_rounded_copy_is_the_books_rounding():
    """float16 values in float32 storage: the arithmetic stays float32, the information is float16's."""
    model = _model()
    rounded = em.amp.rounded_copy(model, em.float16)
    changed = 0
    for (k, v), w in zip(rounded.state_dict().items(), model.state_dict().values()):
        assert v.dtype == em.float32, k
        np.testing.assert_array_equal(v.numpy(), w.numpy().astype(np.float16).astype(np.float32), err_msg=k)
        changed += int((v.numpy() != w.numpy()).sum())
    assert changed > 0  # the rounding did something (He-initialised weights are not float16 values)


@pytest.mark.parametrize("fn", [em.amp.converted_copy, em.amp.rounded_copy])
def test_non_floating_dtype_raises(fn):
    with pytest.raises(em.DTypeError, match="expected float16, float32 or float64, got int64"):
        fn(_model(), em.int64)
