"""Training: recipe, self-describing checkpoints, exact resume, DDP with 2 CPU processes, accuracy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssc_deploy.checkpoint import load_checkpoint
from ssc_deploy.cli import main
from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
from ssc_deploy.errors import SscDeployError
from ssc_deploy.train import DEFAULT_EPOCHS, TrainConfig, default_recipe, params_sha256, train_model

MODEL = "ssc-net-1-9"
# Tiny runs: 2 batches of 16 images an epoch, 1 thread (deterministic and fast on a shared host).
TINY = dict(batch_size=16, max_batches=2, eval_limit=32, progress=False, threads=1)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_recipe_follows_the_paper():
    cifar = default_recipe("cifar10")
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.weight_decay) == (160, 128, 0.1, 2e-4)
    assert cifar.milestones == (80, 120) and cifar.momentum == 0.9 and cifar.nesterov
    assert [cifar.lr_at(e) for e in (0, 79, 80, 119, 120, 159)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    imnet = default_recipe("imagenet32")
    assert (imnet.epochs, imnet.lr, imnet.weight_decay, imnet.milestones) == (40, 0.01, 1e-4, (10, 20, 30))
    digits = default_recipe("digits", name="paper")
    assert digits.epochs == DEFAULT_EPOCHS["digits"] and digits.batch_size == 32 and digits.lr == 0.1
    assert default_recipe("cifar100", epochs=4, lr=0.05).milestones == (2, 3)
    with pytest.raises(SscDeployError, match="--epochs must be at least 1"):
        default_recipe("digits", epochs=0)


def test_train_config_round_trips_through_the_ddp_command_line():
    """The torchrun entry point parses exactly what `ssc-deploy train --nproc` writes, field by field."""
    import dataclasses

    from ssc_deploy.train import ddp

    every = TrainConfig(model=MODEL, data="cifar10:/d", epochs=3, out=Path("o.pt"), batch_size=64, lr=0.05,
                        weight_decay=1e-4, recipe="paper", seed=7, resume=Path("r.pt"), init=Path("i.pt"), in_size=24, progress=False, epoch_lines=True,
                        num_workers=2, max_batches=5, eval_every=1, eval_limit=40, threads=1, device="cpu", force=True)
    assert all(getattr(every, f.name) != f.default for f in dataclasses.fields(TrainConfig))
    for cfg in (every, TrainConfig(out=Path("o.pt"))):
        assert TrainConfig.from_argv(cfg.to_argv(), ddp.build_parser()) == cfg
    # The documented direct use; --data and the recipe fields left open mean the same as in-process.
    direct = TrainConfig.from_argv(["--model", "ssc-net-3-9", "--data", "cifar10:PATH", "--out", "ckpt.pt"],
                                   ddp.build_parser())
    assert direct == TrainConfig(model="ssc-net-3-9", data="cifar10:PATH", out=Path("ckpt.pt"))
    assert TrainConfig.from_argv(["--no-progress"]) == TrainConfig(progress=False)
    with pytest.raises(SystemExit):
        ddp.build_parser().parse_args(["--model", MODEL])  # --out is required there


def test_train_writes_a_self_describing_checkpoint(tmp_path: Path):
    out = tmp_path / "m.pt"
    threads_before = torch.get_num_threads()
    ckpt = train_model(TrainConfig(MODEL, data="digits", epochs=2, out=out, seed=1, recipe="paper", **TINY))
    assert torch.get_num_threads() == threads_before
    back = load_checkpoint(out)
    assert back.model_name == MODEL and back.classes == [str(i) for i in range(10)]
    assert back.mean == list(DEFAULT_MEAN) and back.std == list(DEFAULT_STD) and back.input_shape == [3, 32, 32]
    m = back.metrics
    assert m["test_images"] == 32
    assert m["epochs_done"] == 2 and len(m["history"]) == 2 and 0.0 <= m["test_top1"] <= m["test_top5"] <= 1.0
    assert [h["lr"] for h in m["history"]] == pytest.approx([0.1, 0.01])  # divided by 10 at 50 % of the run
    p = back.provenance
    assert p["data"] == "digits" and p["train_size"] == 1437 and p["test_size"] == 360 and p["seed"] == 1
    assert p["augmentation"] == {"pad": 4, "flip": False}  # a mirrored digit is another symbol
    assert back.training_state["epoch"] == 2 and back.training_state["recipe"]["batch_size"] == 16
    assert all(torch.equal(v, back.state_dict[k]) for k, v in ckpt.state_dict.items())
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.pt"]  # no temporaries left


@pytest.mark.slow
def test_cifar_and_folder_data_get_their_own_statistics(cifar10_dir: Path, image_folder_dir: Path, tmp_path: Path):
    ckpt = train_model(TrainConfig(MODEL, data=f"cifar10:{cifar10_dir}", epochs=1, out=tmp_path / "c.pt", batch_size=8,
                                   max_batches=1, eval_limit=4, progress=False, threads=1))
    assert ckpt.classes[0] == "airplane" and ckpt.provenance["augmentation"] == {"pad": 4, "flip": True}
    assert ckpt.mean == pytest.approx([0.5] * 3, abs=0.05) and ckpt.std == pytest.approx([0.29] * 3, abs=0.03)
    folder = train_model(TrainConfig(MODEL, data=f"folder:{image_folder_dir}", epochs=1, out=tmp_path / "f.pt",
                                     batch_size=4, max_batches=1, progress=False, threads=1))
    assert folder.classes == ["cat", "dog"] and folder.num_classes == 2 and folder.metrics["test_images"] == 6
    assert load_checkpoint(tmp_path / "f.pt").build_model()(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


@pytest.mark.slow
def test_interrupted_run_resumes_exactly(tmp_path: Path):
    """Kill a real `ssc-deploy train` after its first epoch's checkpoint, resume, compare."""
    straight = train_model(TrainConfig(MODEL, epochs=3, out=tmp_path / "straight.pt", **TINY))
    out = tmp_path / "killed.pt"
    cmd = [str(Path(sys.executable).parent / "ssc-deploy"), "train", "--model", MODEL, "--epochs", "3", "--out", str(out),
           "--batch-size", "16", "--max-batches", "2", "--eval-limit", "32", "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not out.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(out).training_state["epoch"]
    assert 1 <= done < 3, f"the run was not interrupted mid-way (epoch {done})"
    resumed = train_model(TrainConfig(resume=out, progress=False, threads=1))
    assert resumed.metrics["epochs_done"] == 3 and len(resumed.metrics["history"]) == 3
    for key, value in straight.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key
    assert resumed.metrics["test_top1"] == straight.metrics["test_top1"]


def test_init_from_bare_state_dict_and_bad_resume(tmp_path: Path, capsys):
    first = train_model(TrainConfig(MODEL, epochs=1, out=tmp_path / "a.pt", **TINY))
    sd = tmp_path / "sd.pt"
    torch.save(first.state_dict, sd)
    with pytest.raises(SscDeployError, match="bare state_dict holds no training state"):
        train_model(TrainConfig(MODEL, resume=sd, out=tmp_path / "b.pt", **TINY))
    tuned = train_model(TrainConfig(MODEL, init=sd, epochs=1, out=tmp_path / "c.pt", lr=1e-9, **TINY))
    w = "stem.0.weight"
    assert torch.allclose(tuned.state_dict[w], first.state_dict[w], atol=1e-6)  # started from those weights
    assert main(["train", "--model", "ssc-net-2-9", "--resume", str(tmp_path / "a.pt"), "--no-progress"]) != 0
    assert "was trained as 'ssc-net-1-9'" in _one_error_line(capsys)


def test_cli_bad_inputs_are_one_line_and_touch_nothing(tmp_path: Path, capsys):
    out = tmp_path / "keep.pt"
    out.write_bytes(b"precious")
    cases = [
        (["--model", "no-such-net"], "unknown model 'no-such-net'"),
        (["--model", MODEL, "--data", f"cifar10:{tmp_path / 'missing'}"], "does not exist"),
        (["--model", MODEL, "--data", "mnist"], "unknown data set"),
        (["--model", MODEL, "--epochs", "0"], "--epochs must be at least 1"),
        (["--model", MODEL, "--out", str(out)], "already exists"),
        (["--model", MODEL, "--resume", str(tmp_path / "nope.pt")], "no such checkpoint file"),
        (["--epochs", "1"], "--model"),
        (["--model", MODEL, "--data", "digits", "--download"], "--download works with"),
        (["--model", MODEL, "--device", "tpu"], "unknown --device"),
    ]
    for args, expected in cases:
        rc = main(["train", *args, "--no-progress", "--max-batches", "1"] + ([] if "--out" in args else ["--out", str(tmp_path / "x.pt")]))
        assert rc != 0, args
        assert expected in _one_error_line(capsys), args
    assert out.read_bytes() == b"precious"
    assert not (tmp_path / "x.pt").exists()


def test_train_out_on_a_read_only_file_system_is_refused_before_training(tmp_path: Path, capsys):
    """Issue 12 #8: the read-only --out used to be found only after the whole training run (minutes)."""
    from tests.support.filesystems import remount_read_only, tmpfs

    with tmpfs(tmp_path / "ro") as ro:
        remount_read_only(ro)
        start = time.perf_counter()
        rc = main(["train", "--model", MODEL, "--no-progress", "--threads", "1", "--out", str(ro / "m.pt")])
        assert rc != 0
        assert "read-only file system" in _one_error_line(capsys)
        assert time.perf_counter() - start < 30 and list(ro.iterdir()) == []


@pytest.mark.parametrize("damage,expected", [("drop", "holds no training state"), ("garble", "stored training recipe is unreadable")])
def test_resume_with_a_damaged_training_state_is_one_line(tmp_path: Path, capsys, damage: str, expected: str):
    from ssc_deploy.checkpoint import Checkpoint, save_checkpoint
    from ssc_deploy.models import create_model

    state = {"epoch": 1, "optimizer": {"state": {}, "param_groups": []}, "recipe": {"epochs": 3, "colour": "red"}}
    if damage == "drop":
        del state["recipe"]
    ckpt = Checkpoint(MODEL, {"num_classes": 10, "in_size": 32}, create_model(MODEL).state_dict(),
                      [str(i) for i in range(10)], list(DEFAULT_MEAN), list(DEFAULT_STD), [3, 32, 32], training_state=state)
    path = tmp_path / "damaged.pt"
    save_checkpoint(ckpt, path)
    before = path.read_bytes()
    assert main(["train", "--resume", str(path), "--no-progress"]) != 0
    assert expected in _one_error_line(capsys)
    assert path.read_bytes() == before


def test_cli_train_then_ckpt_info_json(tmp_path: Path, capsys):
    import json

    out = tmp_path / "cli.pt"
    rc = main(["train", "--model", MODEL, "--epochs", "1", "--batch-size", "16", "--max-batches", "1", "--threads", "1",
               "--eval-limit", "16", "--out", str(out), "--no-progress", "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == MODEL and info["metrics"]["epochs_done"] == 1 and info["resumable"]
    assert main(["ckpt-info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] > 100_000


@pytest.mark.slow
def test_ddp_two_cpu_processes_hold_identical_weights(tmp_path: Path, capsys):
    out = tmp_path / "ddp.pt"
    rc = main(["train", "--model", MODEL, "--epochs", "1", "--batch-size", "32", "--max-batches", "2", "--threads", "1",
               "--eval-limit", "32", "--nproc", "2", "--out", str(out), "--no-progress", "--json"])
    assert rc == 0, capsys.readouterr().err
    ckpt = load_checkpoint(out)
    ddp = ckpt.provenance["distributed"]
    assert ddp["backend"] == "gloo" and ddp["world_size"] == 2
    assert len(ddp["rank_params_sha256"]) == 2 and len(set(ddp["rank_params_sha256"])) == 1
    assert params_sha256(ckpt.build_model()) == ddp["rank_params_sha256"][0]
    assert ckpt.training_state["recipe"]["batch_size"] == 32  # global batch: 16 per rank
    assert ckpt.metrics["history"][0]["epoch"] == 1 and 0 <= ckpt.metrics["test_top1"] <= 1


@pytest.mark.slow
def test_ssc_net_1_9_reaches_90_percent_on_digits(tmp_path: Path):
    """The quickstart's default run: the digits-fast recipe (4 epochs, batch 32), seed 0, 1 thread.

    Measured: 97.2 % test top-1 after these 4 epochs (91.7 % after 3), at 2.5 min an epoch on a
    2-core host loaded to ~10; the 97 % the quickstart reaches is not asserted here because this
    test could not be shown to stay under ~2 minutes on 1 core, so it keeps the 90 % floor.
    """
    from ssc_deploy.train.recipe import default_epochs

    ckpt = train_model(TrainConfig(MODEL, data="digits", out=tmp_path / "ssc19.pt", seed=0, progress=False, threads=1))
    assert ckpt.metrics["epochs_done"] == default_epochs("digits") and ckpt.metrics["test_images"] == 360
    assert ckpt.provenance["recipe"] == "digits-fast"
    assert ckpt.metrics["test_top1"] >= 0.90, ckpt.metrics["test_top1"]
