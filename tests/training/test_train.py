"""The trainer on tiny configs: it learns, resumes exactly, refuses a changed recipe."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch

from networks.checkpoint import TrainingDomain, load_generator, read_checkpoint
from pipeline.app.cli import main
from training.config import DataConfig, LossWeights, TrainConfig
from training.distributed import DistEnv
from training.sampler import StepBatchSampler
from training.toy import ToyReenactmentDataset, toy_batch
from training.trainer import Trainer

CPU = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core box it is faster and steadier than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(
        model="vicoface-32t", stage="mixture", cross_target="ground_truth", steps=4,
        batch_size=4, losses=replace(LossWeights.vicoface(), gan_g=0.5, cycle_l1=1.0),
        data=DataConfig(size=32), log_every=1, sample_every=0, checkpoint_every=0,
    )  # fmt: skip
    return replace(base, **changes)


def read_log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    config = TrainConfig(
        model="lia-32t", steps=20, batch_size=4, data=DataConfig(size=32),
        losses=replace(LossWeights.lia(), gan_g=0.0), log_every=1, sample_every=0,
    )  # fmt: skip
    data = ToyReenactmentDataset(length=4)  # one batch of 4, every step
    trainer = Trainer(config, data, toy_batch, tmp_path, CPU, progress=False)
    trainer.train()
    losses = [r["l1"] for r in read_log(tmp_path)]
    assert losses[-1] < 0.7 * losses[0]


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    named = {f"g.{k}": v for k, v in trainer.generator.state_dict().items()}
    return named | {f"d.{k}": v for k, v in trainer.discriminator.state_dict().items()}


def test_resume_continues_the_same_curve_exactly(tmp_path):
    data = ToyReenactmentDataset()
    straight = Trainer(tiny_config(), data, toy_batch, tmp_path / "a", CPU, progress=False)
    straight.train()

    first = Trainer(tiny_config(steps=2), data, toy_batch, tmp_path / "b", CPU, progress=False)
    first.train()
    resumed = Trainer(tiny_config(), data, toy_batch, tmp_path / "b", CPU, progress=False)
    assert resumed.resume() and resumed.step == 2
    resumed.train()

    log_a, log_b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    for record_a, record_b in zip(log_a, log_b, strict=True):
        record_a.pop("time"), record_b.pop("time")
        assert record_a == record_b
    assert "d" in log_a[-1] and "cycle_l1" in log_a[-1]  # D, GAN and multi-path were on
    params_a, params_b = _params(straight), _params(resumed)
    for key, value in params_a.items():
        assert torch.equal(value, params_b[key]), key


def test_resume_refuses_a_changed_recipe(tmp_path):
    data = ToyReenactmentDataset()
    Trainer(tiny_config(steps=1), data, toy_batch, tmp_path, CPU, progress=False).train()
    changed = tiny_config(losses=replace(LossWeights.vicoface(), l1=1.0))
    trainer = Trainer(changed, data, toy_batch, tmp_path, CPU, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume.*losses"):
        trainer.resume()


def test_checkpoints_and_samples_are_written(tmp_path):
    config = tiny_config(steps=2, checkpoint_every=1, sample_every=1, keep_checkpoints=1)
    Trainer(config, ToyReenactmentDataset(), toy_batch, tmp_path, CPU, progress=False).train()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_0000002.safetensors",
        "step_0000002.state.pt",
    ]
    assert (tmp_path / "samples" / "step_0000001.png").stat().st_size > 0
    generator = load_generator(tmp_path / "checkpoints" / "step_0000002.safetensors")
    assert generator.config.name == "vicoface-32t"
    state = torch.load(tmp_path / "checkpoints" / "step_0000002.state.pt", weights_only=True)
    assert state["step"] == 2 and "g_optim" in state and "rng" in state


def test_checkpoints_record_the_trainers_domain_and_exports_keep_it(tmp_path):
    from networks.checkpoint import checkpoint_domain
    from training.checkpointing import export_generator

    trainer = Trainer(
        tiny_config(steps=1),
        ToyReenactmentDataset(),
        toy_batch,
        tmp_path / "run",
        CPU,
        progress=False,
        domain=TrainingDomain.REAL_FACES,
    )
    model = trainer.train().checkpoint
    assert model is not None and read_checkpoint(model).domain is TrainingDomain.REAL_FACES
    export_generator(model, tmp_path / "shipped.safetensors", {"recipe": "here"})
    assert checkpoint_domain(tmp_path / "shipped.safetensors") is TrainingDomain.REAL_FACES
    export_generator(
        model, tmp_path / "relabelled.safetensors", {}, domain=TrainingDomain.SYNTHETIC_WORLD
    )
    assert checkpoint_domain(tmp_path / "relabelled.safetensors") is TrainingDomain.SYNTHETIC_WORLD


def test_rank_batches_partition_the_global_batch_and_resume_in_place():
    single = StepBatchSampler(10, 4, 6, seed=3)
    ranks = [StepBatchSampler(10, 4, 6, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for step in range(6):
        assert ranks[0].indices_for(step) + ranks[1].indices_for(step) == single.indices_for(step)
    later = StepBatchSampler(10, 4, 6, seed=3, start_step=4)
    assert list(later) == list(single)[4:]
    with pytest.raises(ValueError, match="multiple of the 3 ranks"):
        StepBatchSampler(10, 4, 6, world_size=3)


def test_vicocam_train_runs_on_the_world_and_rejects_bad_loss_names(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run), "--model", "vicoface-32t", "--cross-target",
            "ground_truth", "--steps", "2", "--batch-size", "2", "--workers", "0",
            "--loss", "gan_g=0", "--loss", "gan_cross_g=0", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    model = run / "checkpoints" / "step_0000002.safetensors"
    assert read_checkpoint(model).domain is TrainingDomain.SYNTHETIC_WORLD
    assert main([*args[:-3], "--loss", "nonsense=1"]) == 2
    assert "NAME=WEIGHT" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(run), "--model", "vicoface-32t", "--steps", "1"]) == 2
    assert "teacher" in capsys.readouterr().err


def test_pseudo_targets_identity_and_landmark_terms_run_together(tmp_path):
    from networks.checkpoint import save_checkpoint
    from networks.generator import Generator
    from training.aux_nets import AuxNetConfig, build_aux_net, save_aux_net
    from training.models import TINY_CONFIGS

    torch.manual_seed(1)
    teacher = tmp_path / "teacher.safetensors"
    save_checkpoint(teacher, Generator(TINY_CONFIGS["lia-32t"]))
    id_net, lmk_net = tmp_path / "id.safetensors", tmp_path / "lmk.safetensors"
    save_aux_net(build_aux_net(AuxNetConfig("identity", 32, (8, 8), 16, num_classes=3)), id_net)
    save_aux_net(build_aux_net(AuxNetConfig("landmarks", 32, (8, 8), out_dim=5)), lmk_net)
    config = tiny_config(
        steps=1, cross_target="pseudo", teacher_checkpoint=str(teacher),
        identity_net=str(id_net), landmark_net=str(lmk_net),
    )  # fmt: skip
    trainer = Trainer(config, ToyReenactmentDataset(), toy_batch, tmp_path / "run", CPU, False)
    assert trainer.objectives.teacher is not None
    terms = trainer.train().last_losses
    assert {"cross_l1", "identity", "landmarks", "cycle_l1", "gan_cross_g", "d"} <= set(terms)


def test_a_lia_release_file_initialises_a_vicoface_run(tmp_path):
    import argparse

    from networks.config import DiscriminatorConfig
    from networks.discriminator import Discriminator
    from networks.generator import Generator
    from training.models import TINY_CONFIGS

    torch.manual_seed(2)
    lia = Generator(TINY_CONFIGS["lia-32t"])
    dis = Discriminator(DiscriminatorConfig.for_model(TINY_CONFIGS["lia-32t"]))
    release = tmp_path / "vox.pt"
    torch.save({"gen": lia.state_dict(), "dis": dis.state_dict(),
                "args": argparse.Namespace(latent_dim_motion=20)}, release)  # fmt: skip
    trainer = Trainer(
        tiny_config(init_checkpoint=str(release)), ToyReenactmentDataset(), toy_batch,
        tmp_path / "run", CPU, False,
    )  # fmt: skip
    new, old = trainer.generator.state_dict(), lia.state_dict()
    assert torch.equal(new["enc.fc.1.weight"][:20], old["enc.fc.1.weight"])
    assert torch.equal(new["dec.direction.weight"][:, :20], old["dec.direction.weight"])
    d_new, d_old = trainer.discriminator.state_dict(), dis.state_dict()
    assert all(torch.equal(d_new[k], d_old[k]) for k in d_old)


def test_a_cross_share_runs_the_cross_and_multi_paths_on_the_first_samples_only(tmp_path):
    from training.paths import ReenactmentPaths, TrainBatch

    images = [torch.rand(4, 3, 32, 32) * 2 - 1 for _ in range(4)]
    batch = TrainBatch(images[0], images[1], images[2], images[3], torch.zeros(4, 5, 2))
    half = batch.cross_rows(0.5)
    assert half.other.shape[0] == half.cross_truth.shape[0] == 2 and half.source.shape[0] == 4
    assert batch.cross_rows(1.0) is batch and batch.cross_rows(0.1).other.shape[0] == 1
    trainer = Trainer(tiny_config(steps=2, cross_share=0.5), ToyReenactmentDataset(), toy_batch,
                      tmp_path, CPU, progress=False)  # fmt: skip
    # In float64, so the comparison below sees the paths' logic, not float32
    # convolutions that round differently for a batch of 2 and of 4 (1.5e-5
    # apart for some random draws).
    paths: ReenactmentPaths = copy.deepcopy(trainer.paths).double()
    half64, full64 = ([t.double() for t in (b.source, b.target, b.other)] for b in (half, batch))
    with torch.no_grad():
        out = paths(*half64)
    assert out["self"].shape[0] == 4 and out["cross"].shape[0] == out["multi"].shape[0] == 2
    # The cross output of the first samples is what the full batch gives them.
    with torch.no_grad():
        full = paths(*full64)
    torch.testing.assert_close(out["cross"], full["cross"][:2], rtol=1e-4, atol=1e-5)
    terms = trainer.train().last_losses
    assert {"cross_l1", "cycle_l1"} <= set(terms)
    with pytest.raises(ValueError, match="cross_share"):
        tiny_config(cross_share=0.0)
