"""Choosing the CPU kernels: EMBER_CPU_KERNELS, set_cpu_kernels/use_cpu_kernels, lazy numba, thread policy."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ember as em
from ember.backends import (
    NUMBA_BACKEND,
    NUMPY_BACKEND,
    backend_of,
    cpu_kernels,
    get_backend,
    selection,
    set_cpu_kernels,
    use_cpu_kernels,
)
from ember.backends.reference import conv as conv_kernels
from ember.backends.numba import backend as numba_backend
from ember.backends.reference import pool as pool_kernels
from ember.backends.cpu import threads
from ember.backends.numba.backend import numba_installed

needs_numba = pytest.mark.skipif(not numba_installed(), reason="numba is not installed")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with extra environment variables."""
    full_env = {k: v for k, v in os.environ.items() if k != "EMBER_CPU_KERNELS"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], check=False, env=full_env, capture_output=True, text=True, timeout=120
    )


def test_import_ember_imports_no_numba_and_compiles_nothing():
    code = (
        "import sys, ember, ember.nn, ember.optim, ember.models\n"
        "from ember.backends import cpu_kernels\n"
        "print(cpu_kernels(), 'numba' in sys.modules, 'threadpoolctl' in sys.modules)"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    expected = "numba" if numba_installed() else "numpy"
    assert out.stdout.split() == [expected, "False", "False"]


@needs_numba
def test_first_kernel_use_loads_numba_and_limits_blas_on_small_machines():
    pytest.importorskip("threadpoolctl", reason="the BLAS limit uses threadpoolctl")
    code = (
        "import os, sys, threadpoolctl, ember as em\n"
        "x = em.randn(1, 1, 5, 5)\n"
        "print('numba' in sys.modules)\n"
        "em.nn.functional.max_pool2d(em.nn.functional.conv2d(x, em.randn(1, 1, 3, 3)), 2)\n"
        "print('numba' in sys.modules, 'ember.backends.numba.conv' in sys.modules)\n"
        "blas = [i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
        "print(os.cpu_count(), min(blas) if blas else -1)"
    )
    # The policy applies only when the user set no BLAS thread variable: unset them for the child.
    out = _run(code, **{var: "" for var in threads.BLAS_ENV_VARS})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "False" and lines[1] == "True True"
    cores, blas = map(int, lines[2].split())
    if cores <= threads.SMALL_MACHINE_CORES and blas != -1:  # -1: threadpoolctl sees no BLAS library
        assert blas == 1


def test_environment_variable_selects_the_reference():
    out = _run("from ember.backends import cpu_kernels; print(cpu_kernels())", EMBER_CPU_KERNELS=" NumPy ")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numpy"


def test_invalid_environment_variable_names_the_valid_values():
    out = _run("import ember", EMBER_CPU_KERNELS="fortran")
    assert out.returncode != 0
    assert "EMBER_CPU_KERNELS" in out.stderr and "'numba', 'numpy'" in out.stderr and "'fortran'" in out.stderr


def test_default_kernels_read_from_a_mapping():
    assert selection.default_cpu_kernels({"EMBER_CPU_KERNELS": "numpy"}) == "numpy"
    assert selection.default_cpu_kernels({}) == ("numba" if numba_installed() else "numpy")
    with pytest.raises(ValueError, match="expected one of 'numba', 'numpy', got 'gpu'"):
        selection.default_cpu_kernels({"EMBER_CPU_KERNELS": "gpu"})


@needs_numba
def test_set_cpu_kernels_switches_the_cpu_backend_and_returns_the_previous():
    start = cpu_kernels()
    try:
        assert set_cpu_kernels("numpy") == start
        assert backend_of(np.zeros(1)) is NUMPY_BACKEND and get_backend("cpu") is NUMPY_BACKEND
        assert set_cpu_kernels("numba") == "numpy"
        assert backend_of(np.zeros(1)) is NUMBA_BACKEND and get_backend("cpu") is NUMBA_BACKEND
        assert em.zeros(2).device == em.device("cpu")  # same device either way
    finally:
        set_cpu_kernels(start)


def test_use_cpu_kernels_restores_after_an_exception():
    start = cpu_kernels()
    with pytest.raises(KeyError), use_cpu_kernels("numpy") as name:
        assert name == "numpy" and cpu_kernels() == "numpy"
        raise KeyError("boom")
    assert cpu_kernels() == start


@pytest.mark.parametrize("bad", ["cuda", "", 3, None])
def test_set_cpu_kernels_rejects_unknown_names(bad):
    start = cpu_kernels()
    with pytest.raises(ValueError, match="set_cpu_kernels: expected one of 'numba', 'numpy'"):
        set_cpu_kernels(bad)
    assert cpu_kernels() == start


def test_asking_for_numba_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(selection, "numba_installed", lambda: False)
    with pytest.raises(RuntimeError, match="numba is not installed"):
        set_cpu_kernels("numba")
    assert selection.default_cpu_kernels({}) == "numpy"


@needs_numba
def test_numba_backend_kernel_namespaces():
    from ember.backends.numba import conv as numba_conv
    from ember.backends.numba import pool as numba_pool

    assert NUMBA_BACKEND.name == "numba" and NUMBA_BACKEND.device_type == "cpu"
    assert NUMBA_BACKEND.conv is numba_conv
    assert NUMBA_BACKEND.pool is numba_pool
    for kind in ("nn", "optim"):  # the numba module if present, else the reference
        assert getattr(NUMBA_BACKEND, kind).__name__ in (f"ember.backends.numba.{kind}", f"ember.backends.reference.{kind}")


def test_namespace_falls_back_to_the_reference_when_numba_is_broken(monkeypatch):
    real_import = numba_backend.importlib.import_module

    def broken(name):
        if name == "ember.backends.numba.conv":
            raise ImportError("numba needs NumPy <= 2.5")
        return real_import(name)

    monkeypatch.setattr(numba_backend.importlib, "import_module", broken)
    backend = numba_backend.NumbaBackend()
    with pytest.warns(RuntimeWarning, match="cannot load Numba kernels ember.backends.numba.conv"):
        assert backend.conv is conv_kernels
    assert backend.pool.__name__ in ("ember.backends.numba.pool", "ember.backends.reference.pool")


def test_a_kind_without_a_numba_module_is_the_reference(monkeypatch):
    monkeypatch.setattr(numba_backend.NumbaBackend, "kernel_package", "ember.backends.no_such")
    backend = numba_backend.NumbaBackend()
    assert backend.pool is pool_kernels
    assert backend.kernel_kinds() == ("conv", "pool", "nn", "optim", "softmax")
    assert getattr(backend, "nn_kernels", "absent") == "absent"  # the old attribute names are gone


@needs_numba
def test_both_kernel_sets_train_a_conv_step_to_the_same_numbers(rng):
    x = rng.normal(size=(4, 1, 10, 10)).astype(np.float32)
    t = np.array([0, 1, 2, 1])
    results = {}
    for name in ("numpy", "numba"):
        with use_cpu_kernels(name):
            em.manual_seed(0)
            model = em.models.SimpleConvNet(input_dim=(1, 10, 10), hidden_size=8, output_size=3)
            loss = em.nn.functional.cross_entropy(model(em.tensor(x)), em.tensor(t))
            loss.backward()
            results[name] = [p.grad.numpy() for p in model.parameters()]
    for a, b in zip(results["numpy"], results["numba"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_thread_policy_on_this_machine_and_its_errors():
    policy = threads.thread_policy()
    if (os.cpu_count() or 1) <= threads.SMALL_MACHINE_CORES:
        assert policy["parallel_min_elements"] == float("inf")
    else:
        assert policy["parallel_min_elements"] == threads.PARALLEL_MIN_ELEMENTS
    with pytest.raises(ValueError, match="set_thread_policy: expected blas_threads >= 1, got 0"):
        threads.set_thread_policy(blas_threads=0)
    with pytest.raises(ValueError, match="parallel_min_elements >= 0"):
        threads.set_thread_policy(parallel_min_elements=-1)
    previous = threads.set_thread_policy(parallel_min_elements=10)
    try:
        assert threads.use_parallel(10) and not threads.use_parallel(9)
    finally:
        threads.set_thread_policy(parallel_min_elements=previous["parallel_min_elements"])


def test_small_machine_policy_limits_blas_unless_the_user_chose(monkeypatch):
    """(prange threshold, BLAS limit, batch workers) per machine size and user setting."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    for var in (*threads.BLAS_ENV_VARS, threads.THREADS_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    assert threads._default_policy() == (float("inf"), 1, 2)  # two batch workers of one BLAS thread
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert threads._default_policy() == (float("inf"), None, 1)  # the user's BLAS threads win
    monkeypatch.setenv(threads.THREADS_ENV_VAR, "3")
    assert threads._default_policy() == (float("inf"), 1, 3)  # ember's own setting wins over both
    monkeypatch.delenv(threads.THREADS_ENV_VAR)
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    assert threads._default_policy() == (float(threads.PARALLEL_MIN_ELEMENTS), None, 1)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_ember_num_threads_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(threads.THREADS_ENV_VAR, value)
    with pytest.raises(ValueError, match=f"EMBER_NUM_THREADS to be a positive integer, got '{value}'"):
        threads._default_policy()


def test_batch_workers_setting_and_its_errors():
    previous = threads.set_thread_policy(batch_workers=3)
    try:
        assert threads.batch_workers() == 3 and threads.thread_policy()["batch_workers"] == 3
        with pytest.raises(ValueError, match="set_thread_policy: expected batch_workers >= 1, got 0"):
            threads.set_thread_policy(batch_workers=0)
    finally:
        threads.set_thread_policy(batch_workers=previous["batch_workers"])


def test_allocator_policy_sets_glibc_thresholds_once(monkeypatch):
    from ember.backends.cpu import allocator

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(allocator, "_glibc", lambda: FakeLibc())
    monkeypatch.setitem(allocator._state, "applied", None)
    for var in allocator.USER_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert allocator.apply_allocator_policy() is True
    assert allocator.apply_allocator_policy() is True  # once only
    assert calls == [(-3, allocator.MMAP_THRESHOLD), (-1, allocator.TRIM_THRESHOLD)]


def test_allocator_policy_leaves_a_user_setting_alone(monkeypatch):
    from ember.backends.cpu import allocator

    monkeypatch.setattr(allocator, "_glibc", lambda: pytest.fail("must not touch malloc"))
    monkeypatch.setitem(allocator._state, "applied", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert allocator.apply_allocator_policy() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt tuning is glibc-only")
def test_allocator_policy_stops_page_faults_of_repeated_step_buffers():
    """Alternating big buffers, as a training step does, re-fault pages only without the policy."""
    code = (
        "import resource, sys, numpy\n"
        "from ember.backends.cpu import allocator\n"
        "if sys.argv[1] == 'on' and not allocator.apply_allocator_policy(): print('skip'); raise SystemExit\n"
        "def step():\n"
        "    bufs = [numpy.ones(1_750_000, numpy.float32) for _ in range(6)]\n"  # six 7 MB activations
        "    del bufs\n"
        "for _ in range(3): step()\n"
        "f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20): step()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)"
    )
    env = {**os.environ, **{v: "" for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}}
    faults = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, "-c", code, mode], check=False, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        if out.stdout.strip() == "skip":
            pytest.skip("the C library is not glibc")
        faults[mode] = int(out.stdout)
    # Without the policy this glibc unmapped and re-faulted the 42 MB every step (~60,000 faults
    # over the 20 steps on the development machine); other C libraries may reuse them by themselves.
    assert faults["on"] < 100, faults
