"""Fine-tuning: masked losses, sampler weights, the schedule, both protocols, selection and early stopping."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from cxrssl.errors import ParamError
from cxrssl.finetune import (
    FinetuneConfig,
    finetune,
    macro_auroc,
    multilabel_loss,
    per_class_auroc,
    sample_weights,
    schedule,
)
from cxrssl.models import build_backbone
from cxrssl.params import from_dict
from cxrssl.train import fit
from tests.conftest import REPO, fit_killed_after, params_section, settings

CPU = torch.device("cpu")


def test_masked_labels_carry_no_loss():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    config = settings(FinetuneConfig, "finetune")
    kept = torch.tensor([True, False, True, True]).view(2, 2)
    expected = F.binary_cross_entropy_with_logits(logits[kept], targets[kept])
    assert multilabel_loss(logits, targets, config) == pytest.approx(float(expected))
    all_masked = torch.full_like(targets, float("nan"))
    assert float(multilabel_loss(logits, all_masked, config)) == 0.0


def test_focal_loss_reduces_to_bce_and_follows_its_formula():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 14), (torch.rand(6, 14) < 0.3).float()
    bce = multilabel_loss(logits, targets, settings(FinetuneConfig, "finetune"))
    assert multilabel_loss(
        logits, targets, settings(FinetuneConfig, "finetune", loss="focal", focal_gamma=0.0)
    ) == pytest.approx(float(bce))
    p = torch.sigmoid(logits)
    p_t = torch.where(targets > 0, p, 1 - p)
    alpha_t = torch.where(targets > 0, 0.25, 0.75)
    expected = (-alpha_t * (1 - p_t) ** 2 * torch.log(p_t)).mean()
    got = multilabel_loss(
        logits, targets, settings(FinetuneConfig, "finetune", loss="focal", focal_gamma=2.0, focal_alpha=0.25)
    )
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_sampler_weights_favour_the_rarest_positive_class():
    targets = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 0], [1, float("nan")]], dtype=float)
    w = sample_weights(targets)
    # class 0 has 4 of 6 images, class 1 one, "no positive" one
    assert w[3] == pytest.approx(6.0) and w[4] == pytest.approx(6.0) and w[0] == pytest.approx(1.5)
    assert w[5] == pytest.approx(1.5)  # a masked label is not a positive


def test_val_auroc_matches_scikit_learn_with_masks_and_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    targets = (rng.random((300, 5)) < 0.3).astype(float)
    targets[rng.random((300, 5)) < 0.1] = np.nan  # masked (U-Ignore)
    targets[:, 4] = 0.0  # no positives: left out
    scores = np.round(rng.random((300, 5)), 2)  # many ties
    expected = [
        roc_auc_score(targets[~np.isnan(targets[:, k]), k], scores[~np.isnan(targets[:, k]), k]) for k in range(4)
    ]
    values = per_class_auroc(targets, scores)
    np.testing.assert_allclose(values[:4], expected, rtol=1e-12)
    assert np.isnan(values[4])
    assert macro_auroc(targets, scores) == pytest.approx(np.mean(expected))
    assert np.isnan(macro_auroc(np.zeros((4, 2)), np.ones((4, 2))))


def test_small_fractions_train_for_at_least_min_steps():
    config = settings(FinetuneConfig, "finetune", epochs=5, batch_size=64, min_steps=100, evaluations=10)
    assert schedule(51, config) == (51, 1, 100, 10)  # batch shrinks to the set; 100 epochs of one step
    assert schedule(5000, config) == (64, 78, 5, 1)


def test_max_steps_shortens_the_schedule_and_keeps_a_val_check_at_its_end():
    config = settings(FinetuneConfig, "finetune", epochs=5, batch_size=64, min_steps=100, evaluations=10)
    assert schedule(5000, replace(config, max_steps=100)) == (64, 78, 2, 1)  # epoch 2 stops after 22 steps
    assert schedule(51, replace(config, max_steps=30, evaluations=1)) == (51, 1, 30, 30)


def test_bad_finetune_parameters_name_their_key():
    with pytest.raises(ParamError, match=r"unknown key finetune\.seed;"):
        from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "seed": 3})
    with pytest.raises(ParamError, match="finetune.focal_alpha"):
        from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "focal_alpha": 1.5})
    with pytest.raises(ParamError, match=r"finetune.linear_pcts is \[0\]; expected a list of distinct label percents"):
        from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "linear_pcts": [0]})
    with pytest.raises(ParamError, match=r"finetune.linear_pcts is \[1, 1\]"):
        from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "linear_pcts": [1, 1]})
    with pytest.raises(ParamError, match="finetune.linear_pcts is 'full'"):
        from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "linear_pcts": "full"})
    with pytest.raises(ValueError, match="protocol 'frozen'"):
        finetune(*([None] * 6), settings(FinetuneConfig, "finetune"), "frozen", 0, CPU)


def test_linear_pcts_choose_the_protocol_of_each_percent():
    config = from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "linear_pcts": [1, 10]})
    assert [config.protocol_for(p) for p in (1, 10, 100)] == ["linear", "linear", "full"]
    config = from_dict(FinetuneConfig, "finetune", {**params_section("finetune"), "linear_pcts": []})
    assert [config.protocol_for(p) for p in (1, 10, 100)] == ["full", "full", "full"]


def test_linear_pcts_can_be_set_from_the_command_line(tmp_path):
    """`dvc exp run -S 'finetune.linear_pcts=[1,10]'` goes through Hydra's override grammar into params.yaml."""
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(params), ["finetune.linear_pcts=[1,10]"])
    section = yaml.safe_load(params.read_text())["finetune"]
    assert from_dict(FinetuneConfig, "finetune", section).linear_pcts == [1, 10]


def separable(n=48, size=32, seed=0):
    """Images whose two labels are a bright left half and a bright top half."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, 2, generator=g) < 0.5).float()
    images = torch.rand(n, size, size, generator=g) * 60
    images[:, :, : size // 2] += labels[:, 0, None, None] * 150
    images[:, : size // 2, :] += labels[:, 1, None, None] * 40
    targets = np.concatenate([labels.numpy(), np.zeros((n, 12))], axis=1)
    return images.clamp(0, 255).to(torch.uint8), targets


@pytest.mark.parametrize("protocol", ["full", "linear"])
def test_both_protocols_learn_and_keep_the_best_val_weights(protocol):
    images, targets = separable()
    val_images, val_targets = separable(seed=1)
    torch.manual_seed(0)
    backbone, dim = build_backbone("resnet10")
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    config = settings(
        FinetuneConfig,
        "finetune",
        epochs=8,
        batch_size=16,
        lr=3e-3,
        min_steps=0,
        evaluations=8,
        linear_epochs=8,
        linear_lr=3e-3,
        linear_min_steps=0,
        patience=0,
    )
    model, history, summary = finetune(
        backbone, dim, images, targets, val_images, val_targets, config, protocol, 0, CPU
    )
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())  # the input is untouched
    assert len(history) == 8 and history[-1]["loss"] < history[0]["loss"]
    best = max(h["val_auroc_macro"] for h in history)
    assert summary["val_auroc_macro"] == pytest.approx(best) and best > 0.75
    from cxrssl.finetune import predict

    # the linear protocol scored val on cached features with an fp32 head; predict runs all of it in bf16
    assert macro_auroc(val_targets, predict(model, val_images, CPU, True)) == pytest.approx(best, abs=5e-3)
    if protocol == "linear":
        assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in before.items())


def test_early_stopping_and_its_resume(tmp_path):
    images, targets = separable(n=32)
    val_images, val_targets = separable(n=16, seed=1)
    backbone, dim = build_backbone("resnet10")
    config = settings(
        FinetuneConfig,
        "finetune",
        linear_epochs=30,
        batch_size=16,
        linear_lr=1e-2,
        linear_min_steps=0,
        evaluations=30,
        patience=2,
    )
    _, history, summary = finetune(
        backbone,
        dim,
        images,
        targets,
        val_images,
        val_targets,
        config,
        "linear",
        0,
        CPU,
        checkpoint=tmp_path / "c.ckpt",
    )
    assert summary["epochs_run"] < 30 and summary["epochs_run"] == summary["best_epoch"] + 2
    # rerun: the checkpoint says it stopped; nothing more is trained and the best weights come back
    _, again, summary_again = finetune(
        backbone,
        dim,
        images,
        targets,
        val_images,
        val_targets,
        config,
        "linear",
        0,
        CPU,
        checkpoint=tmp_path / "c.ckpt",
    )
    assert len(again) == len(history) and summary_again["val_auroc_macro"] == summary["val_auroc_macro"]


def test_fit_restores_the_callers_state_from_its_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 1)
    config = settings(FinetuneConfig, "finetune", epochs=2, batch_size=2)
    state = {}

    def batches(generator):
        yield torch.ones(2, 2), 2

    def on_epoch_end(epoch):
        state["seen"] = epoch
        return {}

    fit(
        model,
        lambda x: model(x).sum(),
        batches,
        1,
        config,
        0,
        CPU,
        tmp_path / "f.ckpt",
        "t",
        on_epoch_end=on_epoch_end,
        extra_state=state,
    )
    restored = {"seen": -1}
    fit(model, lambda x: model(x).sum(), batches, 1, config, 0, CPU, tmp_path / "f.ckpt", "t", extra_state=restored)
    assert restored == {"seen": 1}


@pytest.mark.parametrize("protocol", ["full", "linear"])
def test_an_interrupted_finetune_resumes_to_the_same_weights(tmp_path, monkeypatch, capsys, protocol):
    import cxrssl.finetune as finetuning

    images, targets = separable(n=32)
    val_images, val_targets = separable(n=16, seed=1)
    backbone, dim = build_backbone("resnet10")
    config = settings(
        FinetuneConfig,
        "finetune",
        epochs=4,
        linear_epochs=4,
        batch_size=8,
        min_steps=0,
        linear_min_steps=0,
        evaluations=4,
        patience=0,
    )
    straight, history, _ = finetune(
        backbone,
        dim,
        images,
        targets,
        val_images,
        val_targets,
        config,
        protocol,
        0,
        CPU,
        checkpoint=tmp_path / "a.ckpt",
    )
    real_fit = finetuning.fit
    monkeypatch.setattr(finetuning, "fit", fit_killed_after(real_fit, 2))  # the third epoch ends: killed
    with pytest.raises(KeyboardInterrupt):
        finetune(
            backbone,
            dim,
            images,
            targets,
            val_images,
            val_targets,
            config,
            protocol,
            0,
            CPU,
            checkpoint=tmp_path / "b.ckpt",
        )
    monkeypatch.setattr(finetuning, "fit", real_fit)
    capsys.readouterr()
    resumed, resumed_history, _ = finetune(
        backbone,
        dim,
        images,
        targets,
        val_images,
        val_targets,
        config,
        protocol,
        0,
        CPU,
        checkpoint=tmp_path / "b.ckpt",
    )
    assert "resuming after epoch 2" in capsys.readouterr().out  # resumed, not started again
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert [h["loss"] for h in history] == [h["loss"] for h in resumed_history]


def test_a_val_split_that_cannot_select_a_model_is_one_clear_error():
    from cxrssl.errors import DataError

    images, targets = separable(n=16)
    val_images, _ = separable(n=8, seed=1)
    no_positive = np.zeros((8, targets.shape[1]))  # no class with both labels on val
    backbone, dim = build_backbone("resnet10")
    config = settings(FinetuneConfig, "finetune", linear_epochs=1, linear_min_steps=0, batch_size=8, evaluations=1)
    with pytest.raises(DataError, match=r"finetune@x-1: no val class has both a positive and a negative label"):
        finetune(
            backbone, dim, images, targets, val_images, no_positive, config, "linear", 0, CPU, stage="finetune@x-1"
        )
