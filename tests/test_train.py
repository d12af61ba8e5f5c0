"""The training loop: resume gives the same weights as an uninterrupted run; a non-finite loss stops it;
max_steps caps a run."""

import pytest
import torch

from cxrssl.errors import ParamError
from cxrssl.methods.simclr import SimCLRConfig
from cxrssl.params import from_dict
from cxrssl.pretraining import PretrainConfig, pretrain
from cxrssl.train import TrainingError, fit
from tests.conftest import fit_killed_after, params_section, settings

CONFIG = settings(PretrainConfig, "pretrain.common", epochs=3, batch_size=8, lr=1e-3, probe_images=16, seed=3)
METHOD = settings(SimCLRConfig, "pretrain.simclr", hidden_dim=32, dim=16)


def tiny_images(n=24, size=32):
    return (torch.rand(n, size, size, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)


def test_resume_after_interruption_gives_the_same_weights(tmp_path, monkeypatch):
    images = tiny_images()
    straight, history, _ = pretrain("simclr", images, CONFIG, METHOD, tmp_path / "a.ckpt", torch.device("cpu"))

    import cxrssl.pretraining as pretraining

    real_fit = pretraining.fit
    monkeypatch.setattr(pretraining, "fit", fit_killed_after(real_fit, 2))  # the third epoch ends: die
    with pytest.raises(KeyboardInterrupt):
        pretrain("simclr", images, CONFIG, METHOD, tmp_path / "b.ckpt", torch.device("cpu"))
    assert (tmp_path / "b.ckpt").is_file()
    monkeypatch.setattr(pretraining, "fit", real_fit)
    resumed, resumed_history, _ = pretrain("simclr", images, CONFIG, METHOD, tmp_path / "b.ckpt", torch.device("cpu"))
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert [h["loss"] for h in history] == [h["loss"] for h in resumed_history]


def test_changed_settings_do_not_resume_an_old_checkpoint(tmp_path, capsys):
    images = tiny_images()
    pretrain(
        "simclr",
        images,
        settings(PretrainConfig, "pretrain.common", **{**CONFIG.__dict__, "epochs": 1}),
        METHOD,
        tmp_path / "c.ckpt",
        torch.device("cpu"),
    )
    pretrain(
        "simclr",
        images,
        settings(PretrainConfig, "pretrain.common", **{**CONFIG.__dict__, "epochs": 1, "lr": 2e-3}),
        METHOD,
        tmp_path / "c.ckpt",
        torch.device("cpu"),
    )
    assert "ignoring" in capsys.readouterr().out


def test_non_finite_loss_names_stage_epoch_and_step():
    model = torch.nn.Linear(2, 1)
    batches = lambda g: [((torch.ones(4, 2)), 4)] * 3  # noqa: E731
    steps = iter([1.0, 2.0, float("nan")])

    def loss_fn(batch):
        return model(batch).sum() * 0 + next(steps)

    with pytest.raises(TrainingError, match=r"finetune@x: non-finite loss \(nan\) at epoch 1, step 3"):
        fit(
            model,
            loss_fn,
            batches,
            3,
            settings(PretrainConfig, "pretrain.common", epochs=1, batch_size=4),
            0,
            torch.device("cpu"),
            None,
            stage="finetune@x",
        )


def test_non_finite_gradient_with_a_finite_loss_is_an_error():
    model = torch.nn.Linear(2, 1)

    def loss_fn(batch):  # 0 in value, NaN in gradient (d sqrt(u)/du at 0 times du = 0)
        u = model.weight.sum() - model.weight.sum().detach()
        return torch.sqrt(u * 0) + 0 * model(batch).sum()

    def batches(generator):
        yield torch.ones(2, 2), 2

    with pytest.raises(TrainingError, match=r"pretrain@x: non-finite gradient at epoch 1, step 1 .*loss was 0"):
        fit(
            model,
            loss_fn,
            batches,
            1,
            settings(PretrainConfig, "pretrain.common", epochs=1, batch_size=2),
            0,
            torch.device("cpu"),
            None,
            "pretrain@x",
        )


def test_fit_trains_in_channels_last_and_its_weights_load_into_a_plain_model():
    from cxrssl.models import build_backbone

    model, _ = build_backbone("resnet10")
    images = tiny_images(8)[:, None].float() / 255

    def batches(generator):
        yield images, len(images)

    fit(
        model,
        lambda x: model(x).float().pow(2).mean(),
        batches,
        1,
        settings(PretrainConfig, "pretrain.common", epochs=1, batch_size=8),
        0,
        torch.device("cpu"),
        None,
        "test",
    )
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain, _ = build_backbone("resnet10")
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(images), model(images), rtol=1e-4, atol=1e-5)


def test_pretraining_on_smaller_views_gives_a_backbone_for_the_full_images():
    from cxrssl.errors import ParamError
    from cxrssl.params import from_dict

    images = tiny_images(n=16, size=32)
    config = settings(PretrainConfig, "pretrain.common", **{**CONFIG.__dict__, "epochs": 1, "view_size": 24})
    method, _, summary = pretrain("simclr", images, config, METHOD, None, torch.device("cpu"))
    assert [view.size for view in method.views] == [24, 24]  # the views are made at view_size
    method.eval()
    with torch.no_grad():
        assert method.backbone(images[:2, None].float() / 255).shape == (2, method.feature_dim)  # used at 32 px
    with pytest.raises(ParamError, match="pretrain.common.view_size is 8; expected null or an integer >= 17"):
        from_dict(PretrainConfig, "pretrain.common", {**params_section("pretrain.common"), "view_size": 8})


@pytest.mark.parametrize("content", [b"garbage, not a checkpoint", None])
def test_a_damaged_or_foreign_checkpoint_is_ignored_with_a_message(tmp_path, capsys, content):
    images = tiny_images()
    checkpoint = tmp_path / "c.ckpt"
    if content is None:
        torch.save({"epoch": "x", "something": "else"}, checkpoint)  # loads, but is not this loop's checkpoint
    else:
        checkpoint.write_bytes(content)
    config = settings(PretrainConfig, "pretrain.common", **{**CONFIG.__dict__, "epochs": 1})
    _, history, _ = pretrain("simclr", images, config, METHOD, checkpoint, torch.device("cpu"))
    assert len(history) == 1
    assert f"ignoring {checkpoint}: not a readable checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize("steps", [1, 2, 10, 20])
def test_tiny_runs_get_a_schedule(steps):
    model = torch.nn.Linear(2, 1)
    batches = lambda g: [(torch.ones(4, 2), 4)] * steps  # noqa: E731
    config = settings(PretrainConfig, "pretrain.common", epochs=1, batch_size=4, warmup=0.1)
    history = fit(model, lambda x: model(x).pow(2).mean(), batches, steps, config, 0, torch.device("cpu"), None, "t")
    assert len(history) == 1 and history[0]["lr"] >= 0


@pytest.mark.parametrize(("epochs", "steps_per_epoch", "max_steps", "run"), [(3, 4, 6, [4, 2]), (2, 4, 20, [4, 4])])
def test_max_steps_stops_the_loop_and_its_schedule_ends_there(epochs, steps_per_epoch, max_steps, run):
    model = torch.nn.Linear(2, 1)
    drawn: list[int] = []

    def batches(generator):
        for _ in range(steps_per_epoch):
            drawn.append(1)
            yield torch.ones(4, 2), 4

    lrs: list[float] = []
    config = settings(PretrainConfig, "pretrain.common", epochs=epochs, batch_size=4, lr=0.1, max_steps=max_steps)
    history = fit(
        model,
        lambda x: model(x).pow(2).mean(),
        batches,
        steps_per_epoch,
        config,
        0,
        torch.device("cpu"),
        None,
        "t",
        on_step=lambda step, total: lrs.append(total),
    )
    assert [h["images_per_s"] > 0 for h in history] == [True] * len(run)
    assert len(lrs) == sum(run) == len(drawn)  # no batch is made past the cap
    assert set(lrs) == {sum(run)}  # OneCycleLR and the step callbacks see the capped total
    # annealed within the cap (halfway through an uncapped schedule the rate would be near its peak, 0.1)
    assert history[-1]["lr"] < 0.1 / 4


def test_max_steps_must_be_null_or_positive():
    with pytest.raises(ParamError, match=r"pretrain.common.max_steps is 0; expected null or a positive integer"):
        from_dict(PretrainConfig, "pretrain.common", {**params_section("pretrain.common"), "max_steps": 0})
