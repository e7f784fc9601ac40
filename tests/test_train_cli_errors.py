"""Every CLI mistake is one ``error:`` line and exit code 2, caught before any data is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ember as em
from ember.train import main
from ember.training import datasets

QUICK = ["--dataset", "digits", "--model", "two_layer_net", "--epochs", "1", "--max-train", "200",
         "--max-test", "50", "--no-plot", "--progress", "off"]


@pytest.fixture
def no_data_load(monkeypatch):
    """Fail the test if the CLI reads any arrays (validation must come first)."""
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the flags were validated")

    monkeypatch.setattr("ember.training.run.load_data", refuse)
    monkeypatch.setattr(datasets, "_load", refuse)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    (["--lr", "-1"], "error: --lr must be a finite number >= 0, got -1"),
    (["--lr", "nan"], "error: --lr must be a finite number >= 0, got nan"),
    (["--lr", "inf"], "error: --lr must be a finite number >= 0, got inf"),
    (["--weight-decay", "-1"], "error: --weight-decay must be a finite number >= 0, got -1"),
    (["--init", "foo"], "error: --init must be a positive number or one of"),
    (["--init", "-0.5"], "error: --init must be a positive number"),
    (["--max-train", "0"], "error: --max-train must be a positive integer, got 0"),
    (["--max-test", "-3"], "error: --max-test must be a positive integer, got -3"),
    (["--epochs", "0"], "error: --epochs must be a positive integer, got 0"),
    (["--batch-size", "0"], "error: --batch-size must be a positive integer, got 0"),
    (["--lr", "abc"], "error: argument --lr: invalid float value: 'abc'"),
    (["--model", "resnet"], "error: argument --model: invalid choice: 'resnet'"),
    (["--device", "tpu"], "error: --device must be cpu or cuda[:N], got 'tpu'"),
    (["--resume", "--force"], "error: --resume and --force contradict each other"),
    (["--model", "keras_mlp", "--init", "he"], "error: --init is not supported for --model keras_mlp"),
])
def test_bad_flag_is_one_error_line(argv, expected, capsys, no_data_load, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "run")]) == 2
    assert one_error_line(capsys).startswith(expected)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("dataset", ["auto", "mnist"])
def test_missing_data_dir_is_an_error_even_with_auto(dataset, capsys, no_data_load, tmp_path):
    assert main(["--dataset", dataset, "--data-dir", "/nonexistent", "--out", str(tmp_path)]) == 2
    assert one_error_line(capsys) == "error: --data-dir /nonexistent: no such folder"


def test_data_dir_without_idx_files_does_not_fall_back_to_digits(capsys, no_data_load, tmp_path, monkeypatch):
    monkeypatch.delenv("EMBER_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("ember.data.sources.DEBIAN_ROOT", tmp_path / "debian")
    assert main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys)
    assert f"--data-dir {tmp_path}: found neither mnist nor fashion-mnist" in line


def test_cuda_without_gpu_names_the_extras(capsys, no_data_load, tmp_path):
    if em.cuda.is_available():
        pytest.skip("a GPU is available here, so --device cuda is valid")
    assert main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: --device cuda: device cuda: CUDA is not available")
    assert "gpu-cuda12" in line and "gpu-cuda13" in line


def test_named_dataset_not_found_speaks_flags(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("EMBER_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("ember.data.sources.DEBIAN_ROOT", tmp_path / "debian")
    assert main(["--dataset", "mnist", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mnist: expected train-images-idx3-ubyte.gz")
    assert "--download" in err and "--data-dir" in err and "EMBER_DATA" in err
    assert "root=" not in err and "download=True" not in err and "Traceback" not in err


def _trained_run(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "run"
    assert main(QUICK + ["--out", str(out), *extra]) == 0
    return out


@pytest.mark.parametrize("content, expected", [
    (b"", "an empty file"),
    (b"just some notes\n", "not a zip/.npz archive"),
    (b"PK\x03\x04garbage" * 10, "is not a valid ember checkpoint"),
])
def test_resume_from_an_unreadable_checkpoint(content, expected, tmp_path, capsys, no_data_load):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(content)
    assert main(QUICK + ["--out", str(out), "--resume"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: --resume: cannot read {out / 'checkpoint.npz'}") and expected in line
    assert "allow_pickle" not in line and "pickle.load" not in line


def test_resume_with_another_model_is_refused(tmp_path, capsys):
    out = _trained_run(tmp_path)
    capsys.readouterr()
    before = (out / "checkpoint.npz").read_bytes()
    argv = [a if a != "two_layer_net" else "simple_convnet" for a in QUICK]
    assert main(argv + ["--out", str(out), "--resume"]) == 2
    assert one_error_line(capsys) == (f"error: --resume: {out / 'checkpoint.npz'} was trained with "
                                      "--model two_layer_net, not simple_convnet")
    assert (out / "checkpoint.npz").read_bytes() == before


def test_resume_of_a_checkpoint_without_model_name_that_does_not_fit(tmp_path, capsys):
    """Older checkpoints lack the model's name: a shape mismatch is still one line."""
    out = _trained_run(tmp_path)
    state = em.load(out / "checkpoint.npz")
    del state["model_name"]
    em.save(state, out / "checkpoint.npz")
    capsys.readouterr()
    assert main(QUICK + ["--out", str(out), "--resume", "--epochs", "2", "--model", "multi_layer_net"]) == 2
    assert "does not fit this run's model" in one_error_line(capsys)


def test_resume_without_checkpoint(tmp_path, capsys, no_data_load):
    assert main(QUICK + ["--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "--resume given but" in one_error_line(capsys)


def test_existing_run_is_not_overwritten_without_force(tmp_path, capsys):
    out = _trained_run(tmp_path)
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(QUICK + ["--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"{out} already holds a run (checkpoint.npz, history.json)" in line and "--force" in line
    assert (out / "checkpoint.npz").read_bytes() == before
    assert main(QUICK + ["--out", str(out), "--force", "--seed", "1"]) == 0
    assert (out / "checkpoint.npz").read_bytes() != before


def test_summary_lists_every_file_mode_0644_and_stale_temp_files_go(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".checkpoint.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = out / "notes.tmp"
    other.write_text("not ours")
    args = [a for a in QUICK if a != "--no-plot"]
    args = [a if a != "two_layer_net" else "simple_convnet" for a in args]
    assert main(args + ["--out", str(out), "--plot-filters"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    written = ["filters_before.png", "checkpoint.npz", "history.json", "curves.png", "filters_after.png"]
    assert summary.endswith(f"run folder {out} ({', '.join(written)})")
    for name in written:
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~_umask(), name
    assert not stale.exists() and other.exists()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_help_shows_every_default_and_ember_data(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "EMBER_DATA" in out and "--download" in out
    from ember.training.options import build_parser

    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in (action.help or ""), action.option_strings


@pytest.mark.parametrize("argv, expected", [
    (["--lr", "-1"], "error: --lr must be a finite number >= 0, got -1"),
    (["--data-dir", "/nonexistent"], "error: --data-dir /nonexistent: no such folder"),
])
def test_subprocess_mistake_prints_no_traceback(argv, expected, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "ember.train", *argv], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == expected
    assert proc.stdout == "" and not list(tmp_path.iterdir())


@pytest.mark.parametrize("model", ["keras_mlp", "keras_cnn"])
def test_digits_defaults_respect_models_with_their_own_init(model, tmp_path):
    """The digits' He-init default is not forced on the Keras models, which refuse --init."""
    assert main(["--dataset", "digits", "--model", model, "--epochs", "1", "--max-train", "100", "--no-plot",
                 "--progress", "off", "--out", str(tmp_path)]) == 0


def test_unreadable_idx_file_is_one_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EMBER_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("ember.data.sources.DEBIAN_ROOT", tmp_path / "debian")
    data = tmp_path / "data" / "fashion-mnist"
    data.mkdir(parents=True)
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (data / f"{name}-ubyte").write_bytes(b"\x00\x00\x08\x03 truncated")
    assert main(["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--progress", "off"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "train-images-idx3-ubyte" in err
