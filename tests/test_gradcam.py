"""Grad-CAM against cases with a known answer and its closed form, and the localisation scores against loops."""

import numpy as np
import pytest
import torch
from torch import nn

from cxrssl.errors import ParamError
from cxrssl.finetune import Classifier
from cxrssl.gradcam import (
    METHODS,
    GradcamConfig,
    box_mask,
    center_prior,
    energy_inside,
    grad_cam,
    overlay,
    peaks,
    pointing_game,
    target_layer,
    upsample,
)
from cxrssl.models import build_backbone, last_conv_block
from tests.conftest import settings


def region_model() -> tuple[nn.Module, nn.Module]:
    """logit 0 = mean brightness, logit 1 = minus it: a map for class 0 is the bright region itself."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    head = nn.Linear(1, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.bias.zero_()
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    return model, conv


def squares(positions: list[tuple[int, int]], size: int = 16, side: int = 4) -> torch.Tensor:
    images = torch.zeros(len(positions), 1, size, size)
    for n, (r, c) in enumerate(positions):
        images[n, 0, r : r + side, c : c + side] = 1.0
    return images


@pytest.mark.parametrize("method", list(METHODS))
def test_map_of_a_region_detector_is_the_region_and_each_image_has_its_own(method):
    model, conv = region_model()
    images = squares([(2, 3), (10, 9)])
    cams, logits = grad_cam(model, conv, images, torch.tensor([[0, 1], [0, 1]]), method)
    assert cams.shape == (2, 2, 16, 16) and logits.shape == (2, 2)
    for n, (r, c) in enumerate([(2, 3), (10, 9)]):
        mask = torch.zeros(16, 16, dtype=torch.bool)
        mask[r : r + 4, c : c + 4] = True
        assert pointing_game(cams[n : n + 1, 0], mask[None]).item()
        assert energy_inside(cams[n : n + 1, 0], mask[None]).item() == pytest.approx(1.0)
        assert torch.equal(cams[n, 0] > 0, mask)
        assert cams[n, 1].abs().max() == 0  # evidence against class 1: ReLU leaves nothing
        assert not pointing_game(cams[n : n + 1, 1], mask[None]).item()  # an empty map is a miss


@pytest.mark.parametrize("method", list(METHODS))
def test_map_of_the_last_block_has_the_closed_form_of_a_linear_head(method):
    # the head right after the block: the gradient is the same at every location, so both methods are CAM
    torch.manual_seed(0)
    backbone, dim = build_backbone("resnet10")
    model = Classifier(backbone, dim).eval()
    layer = last_conv_block(backbone)
    images = torch.randn(3, 1, 64, 64)
    targets = torch.tensor([[2, 5], [0, 13], [7, 7]])
    cams, logits = grad_cam(model, layer, images, targets, method)
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    with torch.no_grad():
        expected_logits = model(images)
    handle.remove()
    activations = captured[0]  # (N, C, h, w); the head sees their spatial mean
    h, w = activations.shape[-2:]
    torch.testing.assert_close(logits, expected_logits)
    for n in range(3):
        for t in range(2):
            k = targets[n, t]
            expected = torch.relu(torch.einsum("c,chw->hw", model.head.weight[k], activations[n]) / (h * w))
            torch.testing.assert_close(cams[n, t], expected, rtol=1e-4, atol=1e-6)
    assert cams.shape == (3, 2, 2, 2)  # ResNet's last block at 64 px
    big = upsample(cams, 64)
    assert big.shape == (3, 2, 64, 64) and big.min() >= 0
    torch.testing.assert_close(big.amax(dim=(2, 3)), cams.amax(dim=(2, 3)))


def quadrant_model() -> tuple[nn.Module, nn.Module]:
    """logit = mean brightness of the top-left quadrant only (16 x 16 images): a later layer ignores the rest."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    quadrant = torch.zeros(1, 1, 16, 16)
    quadrant[..., :8, :8] = 1.0

    class Quadrant(nn.Module):
        def forward(self, x):
            return (x * quadrant).mean(dim=(1, 2, 3))[:, None]

    return nn.Sequential(conv, nn.ReLU(), Quadrant()), conv


def test_hirescam_shows_only_what_moves_the_logit_and_grad_cam_spreads_it():
    model, conv = quadrant_model()
    images = squares([(2, 2)]) + squares([(10, 10)])  # one square the logit sees, one it ignores
    seen = torch.from_numpy(box_mask([(0.0, 0.0, 0.5, 0.5)], 16))
    hires, _ = grad_cam(model, conv, images, torch.tensor([[0]]), "hirescam")
    expected = images[0, 0] * seen / 256  # d logit / d A = quadrant / (16 * 16), times A
    torch.testing.assert_close(hires[0, 0], expected)
    assert energy_inside(hires[:, 0], seen[None]).item() == pytest.approx(1.0)
    grad, _ = grad_cam(model, conv, images, torch.tensor([[0]]), "gradcam")
    # the channel's mean gradient (1/256 on the 16 seen bright pixels, 0 elsewhere: 1/4096) weights both squares
    # alike, so half the map lies where the logit is blind
    torch.testing.assert_close(grad[0, 0], images[0, 0] / 4096)
    assert energy_inside(grad[:, 0], seen[None]).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        grad_cam(model, conv, images, torch.tensor([[0]]), "gradcam++")


def test_method_is_checked_with_its_key():
    settings(GradcamConfig, "gradcam").validate()
    with pytest.raises(ParamError, match=r'gradcam.method is \'gradcam\+\+\'; expected "gradcam" or "hirescam"'):
        settings(GradcamConfig, "gradcam", method="gradcam++").validate()


def test_hooks_are_removed_and_frozen_weights_still_give_maps():
    backbone, dim = build_backbone("resnet10")
    model = Classifier(backbone, dim)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    layer = target_layer(backbone, "layer3")
    cams, _ = grad_cam(model, layer, torch.randn(2, 1, 32, 32), torch.tensor([[0], [1]]))
    assert cams.shape == (2, 1, 2, 2) and cams.abs().sum() > 0  # layer3 at 32 px
    assert not layer._forward_hooks
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="targets must be"):
        grad_cam(model, layer, torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))
    assert not layer._forward_hooks


def test_unknown_target_layer_names_the_key():
    backbone, _ = build_backbone("resnet10")
    assert target_layer(backbone, "last") is backbone.layer4[-1]
    with pytest.raises(ParamError, match=r"gradcam.layer is 'layer9'.*layer4"):
        target_layer(backbone, "layer9")


def test_box_mask_covers_the_pixels_a_box_touches():
    mask = box_mask([(0.25, 0.5, 0.5, 0.75)], 8)
    expected = np.zeros((8, 8), dtype=bool)
    expected[4:6, 2:4] = True
    assert np.array_equal(mask, expected)
    tiny = box_mask([(0.51, 0.51, 0.52, 0.52)], 8)  # smaller than a pixel: still that pixel
    assert tiny.sum() == 1 and tiny[4, 4]
    both = box_mask([(0.0, 0.0, 0.25, 0.25), (0.75, 0.75, 1.0, 1.0)], 8)
    assert both.sum() == 8 and both[0, 0] and both[7, 7]


def test_scores_match_a_loop():
    rng = np.random.default_rng(0)
    cams = rng.random((20, 10, 10)) * (rng.random((20, 1, 1)) > 0.1)  # some maps all zero
    masks = rng.random((20, 10, 10)) > 0.7
    hits = pointing_game(torch.from_numpy(cams), torch.from_numpy(masks)).numpy()
    shares = energy_inside(torch.from_numpy(cams), torch.from_numpy(masks)).numpy()
    for n in range(20):
        if cams[n].max() == 0:
            assert not hits[n] and shares[n] == 0
            continue
        r, c = np.unravel_index(np.argmax(cams[n]), cams[n].shape)
        assert hits[n] == masks[n, r, c]
        assert shares[n] == pytest.approx(cams[n][masks[n]].sum() / cams[n].sum())


def test_a_coarse_maps_peak_is_the_centre_of_its_cell():
    maps = torch.zeros(2, 2, 2)
    maps[0, 1, 0] = 1.0
    maps[1, 0, 1] = 2.0
    assert peaks(maps, 64).tolist() == [[48, 16], [16, 48]]
    lower_left = torch.from_numpy(box_mask([(0.2, 0.7, 0.3, 0.8)], 64))  # holds pixel (48, 16)
    assert pointing_game(maps, torch.stack([lower_left, lower_left])).tolist() == [True, False]
    upsampled_peak = upsample(maps[:1], 64)[0].argmax()
    assert not lower_left.flatten()[upsampled_peak]  # the upsampled map's maximum sits at the image's edge


def test_tolerance_grows_each_box():
    point = box_mask([(0.5, 0.5, 0.5, 0.5)], 8, margin=0.125)
    assert np.array_equal(np.argwhere(point), [[3, 3], [3, 4], [4, 3], [4, 4]])
    grown = box_mask([(0.25, 0.25, 0.5, 0.5)], 8, margin=0.125)
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:5, 1:5] = True
    assert np.array_equal(grown, expected)
    assert box_mask([(0.0, 0.0, 0.25, 0.25)], 8, margin=0.5).sum() == 36  # clipped at the image's edge


def test_centre_prior_peaks_in_the_middle():
    prior = center_prior(32, 0.25)
    assert torch.allclose(prior, prior.flip(0)) and torch.allclose(prior, prior.T)
    centre = torch.from_numpy(box_mask([(0.4, 0.4, 0.6, 0.6)], 32))
    corner = torch.from_numpy(box_mask([(0.0, 0.0, 0.2, 0.2)], 32))
    assert pointing_game(prior[None], centre[None]).item()
    assert not pointing_game(prior[None], corner[None]).item()


def test_overlay_shows_image_and_map_side_by_side():
    image = np.full((16, 16), 100, dtype=np.uint8)
    cam = np.zeros((16, 16), dtype=np.float32)
    cam[4:8, 4:8] = 1.0
    picture = overlay(image, cam, [(0.25, 0.25, 0.5, 0.5)], ["Cardiomegaly", "p = 0.90"], scale=2)
    assert picture.shape == (16 * 2 + 6 + 32, 64, 3)
    alone = overlay(image, None, [], ["x"], scale=2)
    assert alone.shape == (16 + 6 + 32, 32, 3)
