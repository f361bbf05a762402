"""Named recipes: paper (default for CIFAR/ImageNet32/folder) and digits-fast (default on digits),
stored whole in the checkpoint; old checkpoints without a name resume as the paper's; thread choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssc_deploy.checkpoint import load_checkpoint, save_checkpoint
from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.train import TrainConfig, default_recipe, train_model
from ssc_deploy.train.recipe import Recipe
from ssc_deploy.train.threads import candidates, fastest

MODEL = "ssc-net-1-9"
TINY = dict(batch_size=16, max_batches=2, eval_limit=16, progress=False, threads=1)


def test_recipes_are_named_and_the_paper_stays_the_default_off_digits():
    for kind in ("cifar10", "cifar100", "imagenet32", "folder"):
        assert default_recipe(kind).name == "paper" and default_recipe(kind).schedule == "step"
    fast = default_recipe("digits", family="ssc-net")
    assert (fast.name, fast.epochs, fast.batch_size, fast.schedule, fast.label_smoothing) == (
        "digits-fast", 4, 32, "warmup-cosine", 0.1)
    paper = default_recipe("digits", name="paper")
    assert (paper.epochs, paper.milestones, paper.label_smoothing) == (6, (3, 4), 0.0)
    lrs = [fast.lr_at(e, b, 45) for e in range(4) for b in range(45)]
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(0.1) and 0 < lrs[0] < lrs[10] < lrs[peak]
    assert peak == pytest.approx(0.15 * 180, abs=1) and all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert lrs[-1] < 1e-3
    with pytest.raises(SscDeployError, match="unknown recipe 'fastest'"):
        default_recipe("digits", name="fastest")
    assert Recipe.from_dict(fast.to_dict()) == fast


def test_the_recipe_is_stored_and_an_old_checkpoint_resumes_as_paper(tmp_path: Path, capsys):
    fast = train_model(TrainConfig(MODEL, epochs=1, out=tmp_path / "fast.pt", **TINY))
    assert fast.provenance["recipe"] == "digits-fast"
    stored = load_checkpoint(tmp_path / "fast.pt").training_state["recipe"]
    assert stored["name"] == "digits-fast" and stored["schedule"] == "warmup-cosine" and stored["label_smoothing"] == 0.1
    # A checkpoint from before recipes had names: only the step-schedule fields.
    old = train_model(TrainConfig(MODEL, epochs=1, out=tmp_path / "old.pt", recipe="paper", **TINY))
    for key in ("name", "schedule", "warmup", "label_smoothing"):
        del old.training_state["recipe"][key]
    save_checkpoint(old, tmp_path / "old.pt")
    resumed = train_model(TrainConfig(resume=tmp_path / "old.pt", epochs=2, progress=False, threads=1))
    assert resumed.provenance["recipe"] == "paper" and resumed.training_state["recipe"]["name"] == "paper"
    assert [h["lr"] for h in resumed.metrics["history"]] == pytest.approx([0.1, 0.01])
    assert main(["train", "--resume", str(tmp_path / "fast.pt"), "--recipe", "paper", "--epochs", "2",
                 "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "was trained with recipe 'digits-fast', not 'paper'" in err
    assert main(["train", "--model", MODEL, "--recipe", "nope", "--out", str(tmp_path / "x.pt"), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown recipe 'nope'" in err and "\n" not in err
    assert not (tmp_path / "x.pt").exists()


def test_threads_are_timed_unless_given(tmp_path: Path):
    given = train_model(TrainConfig(MODEL, epochs=1, out=tmp_path / "a.pt", **TINY))
    assert given.provenance["threads_per_process"] == 1 and given.provenance["threads_timed"] == {}
    timed = train_model(TrainConfig(MODEL, epochs=1, out=tmp_path / "b.pt", **{**TINY, "threads": None}))
    seconds = {int(k): v for k, v in timed.provenance["threads_timed"].items()}
    assert sorted(seconds) == candidates() and all(v > 0 for v in seconds.values())
    assert timed.provenance["threads_per_process"] == fastest(seconds)
    assert fastest({1: 1.0, 2: 0.97}) == 1 and fastest({1: 1.0, 2: 0.5}) == 2
    assert candidates(procs_per_host=64) == [1]


def test_digits_fast_learning_rate_follows_the_model_family():
    """Measured on digits (4 epochs): SSC-Nets train best at 0.1, MobileNetV2 and IGCV3 at 0.05."""
    from ssc_deploy.train.recipe import DIGITS_FAST_LR, DIGITS_FAST_LR_OTHERS

    assert default_recipe("digits", family="ssc-net").lr == DIGITS_FAST_LR["ssc-net"] == 0.1
    assert default_recipe("digits", family="igcv3").lr == default_recipe("digits", family="mobilenetv2").lr
    assert default_recipe("digits", family="igcv3").lr == DIGITS_FAST_LR_OTHERS == 0.05
    assert default_recipe("digits", family="igcv3", lr=0.2).lr == 0.2  # --lr still wins
    assert default_recipe("cifar10", family="igcv3").lr == 0.1  # the paper's recipe is untouched
