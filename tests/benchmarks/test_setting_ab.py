"""``python -m benchmarks.setting_ab``: its usage errors, and one short run that really switches the setting."""

import pytest

from benchmarks import setting_ab


@pytest.mark.parametrize("argv", [[], ["tln"], ["vgg", "m:N", "1"], ["tln", "no_colon", "1"]])
def test_usage_errors_say_error_and_return_2(argv, capsys):
    assert setting_ab.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: usage:")


def test_an_unknown_setting_is_named(capsys):
    assert setting_ab.main(["tln", "ember.backends.numba.pool_flat:NO_SUCH", "1"]) == 2
    assert "has no setting 'NO_SUCH'" in capsys.readouterr().err


def test_a_run_times_each_value_in_turn(monkeypatch, capsys):
    pytest.importorskip("numba")
    from ember.backends.numba import pool_flat

    seen = []
    real = pool_flat.run
    monkeypatch.setattr(pool_flat, "run", lambda *args: seen.append(pool_flat.MIN_POOL_ELEMENTS) or real(*args))
    monkeypatch.setattr(pool_flat, "MIN_POOL_ELEMENTS", pool_flat.MIN_POOL_ELEMENTS)
    monkeypatch.setattr(setting_ab, "STEPS_PER_BLOCK", {**setting_ab.STEPS_PER_BLOCK, "tln": 2})
    assert setting_ab.main(["tln", "ember.backends.numba.pool_flat:MIN_POOL_ELEMENTS", "1e12,0", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "MIN_POOL_ELEMENTS=1000000000000" in out[0] and "MIN_POOL_ELEMENTS=0:" in out[1]
    assert "paired ratio to 1000000000000: 1.0000" in out[0]
    assert set(seen) == {10**12, 0}
