"""Training through the real CLI: a tiny fit, checkpoint loading, kill-and-resume, W&B, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gnnalloc.families.edge.nn.allocator import Allocator

CONFIG = Path(__file__).resolve().parents[4] / "training" / "configs" / "default.yaml"

TINY = [
    "--config", str(CONFIG),
    "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.max_time", "null",
    "--trainer.val_check_interval", "3",
    "--data.train_instances", "8",
    "--data.users_min", "8",
    "--data.users_max", "16",
    "--data.batch_size", "4",
    "--data.val_loads", "[]",
    "--data.val_random_instances", "2",
    "--model.hidden", "16",
    "--model.heads", "2",
    "--model.layers", "1",
    "--model.track_every_n_steps", "1",
]


def _callbacks(ckpt_dir: Path, every: int = 3) -> list[str]:
    return [
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={ckpt_dir}",
        "--trainer.callbacks.save_last=true",
        f"--trainer.callbacks.every_n_train_steps={every}",
        "--trainer.callbacks.save_top_k=-1",
    ]


def _fit(args: list[str], cwd: Path, env: dict | None = None, **kwargs) -> subprocess.Popen:
    full_env = dict(os.environ, WANDB_MODE="disabled", **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "gnnalloc.cli", "fit", *args], cwd=cwd, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )


def _no_yaml_callbacks(tmp_path: Path) -> list[str]:
    # The default config's callbacks write into checkpoints/ of the checkout: replace them.
    return ["--trainer.callbacks=[]"]


def test_tiny_fit_and_checkpoint_load(tmp_path):
    ckpt = tmp_path / "ckpt"
    proc = _fit(TINY + _no_yaml_callbacks(tmp_path) + _callbacks(ckpt) + ["--trainer.max_steps", "6"], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    last = ckpt / "last.ckpt"
    assert last.is_file()
    data = torch.load(last, weights_only=True)
    assert data["global_step"] == 6
    model = Allocator.from_checkpoint(last)
    assert model.config()["hidden"] == 16
    from gnnalloc import random_instance
    from gnnalloc.families.edge.problem import max_violation

    inst = random_instance(30, 5, 1.0, 0)
    assert max_violation(inst, model.allocate(inst)) <= 1e-7

    from gnnalloc.training.export import export_checkpoint

    small = tmp_path / "default.ckpt"
    metadata = export_checkpoint(last, small)
    assert metadata["training"]["hidden"] == 16 and metadata["global_step"] == 6
    shipped = Allocator.from_checkpoint(small)
    assert shipped.metadata["global_step"] == 6
    assert small.stat().st_size < last.stat().st_size  # no optimizer state
    assert torch.allclose(
        torch.as_tensor(shipped.allocate(inst).compute), torch.as_tensor(model.allocate(inst).compute)
    )


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    proc = _fit(TINY + _no_yaml_callbacks(tmp_path) + _callbacks(ckpt, every=2) + ["--trainer.max_steps", "100000"], tmp_path)
    last = ckpt / "last.ckpt"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not (last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 4):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    saved = torch.load(last, weights_only=True)["global_step"]
    assert saved >= 4
    resumed = _fit(
        TINY + _no_yaml_callbacks(tmp_path) + _callbacks(ckpt, every=2)
        + ["--trainer.max_steps", str(saved + 4), "--ckpt_path", str(last)],
        tmp_path,
    )
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert "Restored all states" in out or "Restoring states" in out
    assert torch.load(last, weights_only=True)["global_step"] == saved + 4


def test_wandb_offline_run_is_written_and_mode_restored(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    args = [a for a in TINY]
    i = args.index("--trainer.logger")
    del args[i : i + 2]  # keep the config's offline WandbLogger
    proc = subprocess.run(
        [sys.executable, "-m", "gnnalloc.cli", "fit", *args, *_no_yaml_callbacks(tmp_path),
         "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.max_steps", "3",
         "--trainer.enable_checkpointing", "false"],
        cwd=tmp_path, env=dict(env, WANDB_SILENT="true"), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs, "an offline W&B run directory should exist"
    assert "WANDB_MODE" not in os.environ


@pytest.mark.timeout(900)
def test_ddp_two_cpu_processes(tmp_path):
    proc = _fit(
        TINY + _no_yaml_callbacks(tmp_path)
        + ["--trainer.max_steps", "3", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
           "--trainer.strategy", "ddp", "--trainer.enable_checkpointing", "false"],
        tmp_path,
    )
    out, _ = proc.communicate(timeout=850)
    assert proc.returncode == 0, out[-4000:]
    assert "distributed_backend=gloo" in out or "GLOBAL_RANK: 1" in out or "world_size=2" in out.lower() or "Initializing distributed" in out


def test_default_config_with_wandb_disabled_then_validate_and_test(tmp_path):
    """The shipped YAML as is (W&B logger, checkpoint callback): WANDB_MODE=disabled drops W&B
    (WandbLogger(offline=True) would otherwise overwrite it), other loggers stay, the tracked
    share is logged at the steps it is measured, and validate/test run on the checkpoint under
    Lightning's inference mode."""
    small = [
        "--config", str(CONFIG), "--trainer.enable_progress_bar", "false",
        "--data.train_instances", "16", "--data.users_min", "8", "--data.users_max", "16",
        "--data.batch_size", "4", "--data.val_loads", "[]", "--data.val_random_instances", "2",
        "--model.hidden", "16", "--model.heads", "2", "--model.layers", "1",
    ]
    proc = _fit(
        small + ["--trainer.max_steps", "6", "--trainer.val_check_interval", "3",
                 "--trainer.log_every_n_steps", "1", "--model.track_every_n_steps", "4",
                 "--trainer.logger+=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "."],
        tmp_path,
    )
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "LightningCLI's args parameter" not in out
    assert not (tmp_path / "wandb").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    import csv

    (metrics,) = (tmp_path / "lightning_logs").glob("*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    tracked = sorted(int(r["step"]) for r in rows if r.get("train/loss_decrease_share"))
    assert tracked == [0, 4]
    assert any(r.get("train/lr") for r in rows)

    last = str(tmp_path / "checkpoints" / "last.ckpt")
    for command, extra, key in [
        ("validate", [], "val/gap"),
        ("test", ["--data.test_eua_users", "30", "--data.test_loads", "[1.0]"], "test/gap"),
    ]:
        run = subprocess.run(
            [sys.executable, "-m", "gnnalloc.cli", command, *small, *extra, "--ckpt_path", last],
            cwd=tmp_path, env=dict(os.environ, WANDB_MODE="disabled"), capture_output=True, text=True,
            timeout=600,
        )
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        assert key in run.stdout


def test_module_settings_are_checked_by_name():
    from gnnalloc.families.edge.training.module import AllocatorModule

    for name, value in [
        ("lr", 0.0), ("weight_decay", -1.0), ("gradient_clip", -1.0), ("gradient_clip", float("nan")),
        ("warmup_steps", -5), ("decay_steps", 1.5), ("track_every_n_steps", -1),
    ]:
        with pytest.raises(ValueError, match=f"^{name}: "):
            AllocatorModule(hidden=16, heads=2, layers=1, **{name: value})


@pytest.mark.parametrize("case,field", [
    ("self-referencing yaml", "config"), ("binary yaml", "config"), ("max_steps", "trainer"),
    ("missing ckpt", "ckpt_path"), ("truncated ckpt", "ckpt_path"), ("malicious ckpt", "ckpt_path"),
    ("unknown argument", "arguments"),
])
def test_fit_errors_are_one_line_exit_2(tmp_path, capsys, case, field):
    import logging
    import pickle

    from gnnalloc.cli import main as cli_main

    # Log handlers made by Lightning/jsonargparse keep the stream of the test that first ran
    # them (a closed capture): point them at this test's stderr.
    for logger in [logging.root, *map(logging.getLogger, list(logging.root.manager.loggerDict))]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # setStream would flush the closed one

    config = Path(__file__).resolve().parents[4] / "training" / "configs" / "default.yaml"
    argv = ["fit", "--config", str(config), "--trainer.logger", "false"]
    if case == "self-referencing yaml":
        (tmp_path / "c.yaml").write_text("a: &a [*a]\n")
        argv = ["fit", "--config", str(tmp_path / "c.yaml")]
    elif case == "binary yaml":
        (tmp_path / "c.yaml").write_bytes(b"\x00\x01binary\xff\xfe")
        argv = ["fit", "--config", str(tmp_path / "c.yaml")]
    elif case == "max_steps":
        argv += ["--trainer.max_steps", "-5"]
    elif case == "missing ckpt":
        argv += ["--ckpt_path", str(tmp_path / "none.ckpt")]
    elif case == "truncated ckpt":
        shipped = Path(__file__).resolve().parents[4] / "checkpoints" / "default.ckpt"
        (tmp_path / "t.ckpt").write_bytes(shipped.read_bytes()[:100])
        argv += ["--ckpt_path", str(tmp_path / "t.ckpt")]
    elif case == "malicious ckpt":
        class Evil:
            def __reduce__(self):
                return (print, ("ran",))
        (tmp_path / "e.ckpt").write_bytes(pickle.dumps({"state_dict": Evil()}))
        argv += ["--ckpt_path", str(tmp_path / "e.ckpt")]
    else:
        argv += ["--bogus", "1"]
    assert cli_main(argv) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {field}: "), err
    assert "Traceback" not in err and "usage:" not in err and "ran" not in out


def test_fairness_objectives_from_the_config_reach_the_module(tmp_path):
    ckpt = tmp_path / "ckpt"
    setting = '{"objectives": "instance", "aggregator": "upgrad"}'
    proc = _fit(TINY + _no_yaml_callbacks(tmp_path) + _callbacks(ckpt, every=2)
                + ["--trainer.max_steps", "2", "--model.fairness", setting], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    data = torch.load(ckpt / "last.ckpt", weights_only=True)
    assert data["hyper_parameters"]["fairness"] == {"objectives": "instance", "aggregator": "upgrad"}
    from gnnalloc.families.edge.training.module import AllocatorModule
    from gnnalloc.fairness import FairnessLoss

    module = AllocatorModule(hidden=16, heads=2, layers=1, fairness={"objectives": "instance", "aggregator": "upgrad"})
    assert isinstance(module.fair, FairnessLoss) and module.fair.aggregator == "upgrad"


@pytest.mark.parametrize(("name", "value"), [("rescale", False), ("stationary", "stop")])
def test_per_user_mgda_settings_beside_fairness_loss_settings_are_named(name, value):
    """rescale and stationary belong to per-user MGDA; beside FairnessLoss settings they were
    silently unused."""
    from gnnalloc.families.edge.training.module import AllocatorModule

    with pytest.raises(ValueError, match=f"^{name}: applies to fairness output"):
        AllocatorModule(hidden=16, heads=2, layers=1, fairness={"objectives": "instance"}, **{name: value})


def test_regret_objectives_train_on_the_exact_references_of_the_training_data():
    import lightning.pytorch as pl

    from gnnalloc.families.edge.training._losses import per_user_loss
    from gnnalloc.families.edge.training.data import InstanceDataModule
    from gnnalloc.families.edge.training.module import AllocatorModule

    data = InstanceDataModule(topology="random", train_instances=4, users_min=8, users_max=12, batch_size=2,
                              val_loads=[], val_random_instances=0, train_reference=True)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch.reference_utility is not None and batch.reference_utility.shape == (batch.problem.num_users,)
    torch.manual_seed(0)
    module = AllocatorModule(hidden=16, heads=2, layers=1, track_every_n_steps=0,
                             fairness={"objectives": "instance", "aggregator": "softmin", "temperature": 0.1})
    out = module.model(batch.graph, batch.problem)
    utility = -per_user_loss(batch.problem, out.compute, out.bandwidth)
    _, stats = module.fair(utility, instance=batch.problem.user_graph, baseline=batch.reference_utility)
    assert stats["objective_mean"] <= 1e-6 < -stats["objective_min"]  # regrets: below the exact optimum
    before = [p.detach().clone() for p in module.parameters()]
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=data.train_dataloader())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
