"""Chapter 9 (segmentation: FCN and U-Net): the values the page glued, against independent
references.

The page's numbers come from the book build (``book.glued``); each test recomputes them another
way: layers written out here in plain ``torch.nn`` and run on the meta device, PyTorch's own
``nn.ConvTranspose2d`` for the size formula (over random settings drawn by hypothesis),
torchvision's VGG-16 and its published parameter count, closed-form sums written in the test,
and the figures that the FCN and U-Net papers print, where the page says it reproduces them.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from book_build import BookBuild
from cnncourse import counting
from cnncourse.data import SEG_SHAPE_NAMES, make_shapes_seg
from cnncourse.models import fcn as fcn_module

PAGE = "book/09_segmentation"
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
VGG16_CFG += [512, 512, 512, "M"]


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def meta_side(layers: list[nn.Module], side: int, channels: int = 1) -> int:
    """Side of the map that `layers`, applied in turn, make of a side x side input."""
    x = torch.empty(1, channels, side, side, device="meta")
    for layer in layers:
        x = layer.to("meta")(x)
    return x.shape[-1]


# ---------------------------------------------------------------------------------------------
# A dense layer as a convolution


def test_dense_layer_as_convolution(g) -> None:
    assert g["fc_dense_params"] == g["fc_conv_params"] == 16 * 3 * 3 * 5 + 5
    assert g["fc_diff_same"] < 1e-5
    assert g["fc_diff_windows"] < 1e-5
    stack = [nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.MaxPool2d(2)]
    assert meta_side(stack, 18, 3) == 3  # the page's 16 x 3 x 3 volume
    assert g["fc_grid_side"] == meta_side([*stack, nn.Conv2d(16, 5, 3)], 34, 3)
    assert g["fc_grid_stride"] == 2 * 2


def test_vgg16_convolutionalized(g) -> None:
    with torch.device("meta"):
        vgg = torchvision.models.vgg16()
    fc6 = vgg.classifier[0]
    assert g["vgg_fc6_params"] == sum(p.numel() for p in fc6.parameters())
    assert g["vgg_fc6_conv_params"] == (7 * 7 * 512 + 1) * 4096 == g["vgg_fc6_params"]
    x = vgg.features(torch.empty(1, 3, 500, 500, device="meta"))
    assert g["vgg_pool5_side"] == x.shape[-1]
    assert g["vgg_score_side"] == nn.Conv2d(512, 4096, 7, device="meta")(x).shape[-1]
    assert g["vgg_stride"] == 2**5
    assert g["vgg_classes"] == vgg.classifier[-1].out_features


# ---------------------------------------------------------------------------------------------
# Transposed convolution


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 9),
    s=st.integers(1, 6),
    p=st.integers(0, 5),
    op=st.integers(0, 5),
    d=st.integers(1, 3),
)
def test_transposed_output_size_formula_against_pytorch(n, k, s, p, op, d) -> None:
    """`counting.conv_transpose_output_size` is what nn.ConvTranspose2d produces, or it raises
    where PyTorch refuses the setting or would give an empty map."""
    layer = nn.ConvTranspose2d(1, 1, k, s, p, op, dilation=d)  # on the CPU: meta skips checks
    try:
        got = layer(torch.zeros(1, 1, n, n)).shape[-1]
    except RuntimeError:
        got = None
    if got is None or got < 1:
        with pytest.raises(ValueError):
            counting.conv_transpose_output_size(n, k, s, p, op, d)
    else:
        assert counting.conv_transpose_output_size(n, k, s, p, op, d) == got
        assert got == (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def test_transposed_convolution_on_the_page(g) -> None:
    settings_checked = sum(
        1
        for n in range(1, 9)
        for k in range(1, 6)
        for s in range(1, 4)
        for p in range(3)
        for op in range(s)
        if (n - 1) * s + k - 2 * p + op >= 1
    )
    assert g["tc_settings"] == settings_checked
    assert g["tc_mismatches"] == 0
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = nn.functional.conv_transpose2d(x, torch.ones(1, 1, 3, 3), stride=2)
    assert g["tc_example_side"] == out.shape[-1] == 5
    assert g["tc_example_overlap"] == 1 + 2 + 3 + 4  # the centre gets all four copies
    assert g["tc_hand_diff"] < 1e-12 and g["tc_frac_diff"] < 1e-12
    same = nn.ConvTranspose2d(1, 1, 3, stride=1, padding=1, device="meta")
    double = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, device="meta")
    assert g["tc_same_size"] == meta_side([same], 8) == 8
    assert g["tc_double"] == meta_side([double], 8) == 16


def overlap_counts(k: int, s: int, length: int) -> set[int]:
    """1-D: how many kernel copies cover each output position away from the borders."""
    counts = [sum(0 <= y - s * i < k for i in range(length)) for y in range(length * s)]
    return set(counts[k : length * s - k])


def test_checkerboard(g) -> None:
    # 2-D counts of a kernel of ones are products of the 1-D counts.
    ones3 = {a * b for a in overlap_counts(3, 2, 12) for b in overlap_counts(3, 2, 12)}
    ones4 = {a * b for a in overlap_counts(4, 2, 12) for b in overlap_counts(4, 2, 12)}
    assert g["overlap3_values"] == ", ".join(map(str, sorted(ones3))) == "1, 2, 4"
    assert g["overlap4_values"] == ", ".join(map(str, sorted(ones4))) == "4"
    assert g["spread_ones4"] == 0.0 and g["spread_upconv"] == 0.0  # flat maps
    assert g["spread_ones3"] > 1.0  # max 4, min 1, mean between 2 and 2.25
    assert g["spread_random4"] > 0.05 and g["spread_random2"] > 0.05


def test_upsampling_then_conv_is_a_constrained_transposed_conv(g) -> None:
    assert g["disguise_diff"] < 1e-5 and g["phase_gap"] < 1e-5


def test_erratum_fewer_parameters(g) -> None:
    """The slides: upsampling + 2x2 conv "results in fewer parameters". Not than the 2x2
    transposed convolution: the same count, for U-Net's 1024 -> 512 up-convolution."""
    assert g["params_upconv"] == (2 * 2 * 1024 + 1) * 512 == g["params_tc2"]
    assert g["params_tc4"] == (4 * 4 * 1024 + 1) * 512 > g["params_upconv"]


# ---------------------------------------------------------------------------------------------
# FCN


def fcn8s_sides(side: int) -> dict[str, int]:
    """FCN-8s written out in plain torch on the meta device (the reference's geometry: conv1_1
    padded by 100, pools rounding up), with the reference's crops typed from its net.py."""
    layers, c = [], 3
    sides = {}
    x = torch.empty(1, 3, side, side, device="meta")
    for i, v in enumerate(VGG16_CFG):
        if v == "M":
            x = nn.MaxPool2d(2, 2, ceil_mode=True)(x)
            pools = sum(w == "M" for w in VGG16_CFG[: i + 1])
            sides[f"pool{pools}"] = x.shape[-1]
            if pools in (3, 4):
                layers.append(x)
        else:
            x = nn.Conv2d(c, v, 3, padding=100 if i == 0 else 1, device="meta")(x)
            c = v
    x = nn.Conv2d(512, 21, 7, device="meta")(x)  # fc6 .. score_fr, channels aside
    sides["score"] = x.shape[-1]
    up2 = nn.ConvTranspose2d(21, 21, 4, stride=2, device="meta")(x)
    sides["up2"] = up2.shape[-1]
    assert layers[1].shape[-1] >= 5 + sides["up2"]  # pool4 cropped at 5
    up4 = nn.ConvTranspose2d(21, 21, 4, stride=2, device="meta")(up2)
    sides["up4"] = up4.shape[-1]
    assert layers[0].shape[-1] >= 9 + sides["up4"]  # pool3 cropped at 9
    sides["up8"] = nn.ConvTranspose2d(21, 21, 16, stride=8, device="meta")(up4).shape[-1]
    sides["up16"] = nn.ConvTranspose2d(21, 21, 32, stride=16, device="meta")(up2).shape[-1]
    sides["up32"] = nn.ConvTranspose2d(21, 21, 64, stride=32, device="meta")(x).shape[-1]
    return sides


def test_fcn_sizes_step_by_step(g) -> None:
    sides = fcn8s_sides(500)
    for key, value in sides.items():
        if key != "pool1" and key != "pool2":
            assert g[f"fcn_side_{key}"] == value, key
    assert g["fcn_conv1_side"] == 500 + 2 * 100 - 2
    assert g["fcn_sizes_match"] is True
    assert g["fcn_out_side"] == 500
    # Each final map holds the image from the crop on: crop + 500 <= side.
    for key, net in [("32s", "up32"), ("16s", "up16"), ("8s", "up8")]:
        assert g[f"fcn_crop_{key}"] + 500 <= sides[net]


def test_fcn_crops_are_the_reference_offsets(g) -> None:
    """The offsets the page derives from the geometry are those of the reference nets
    (voc-fcn*s, which the package's FCN uses and test_models_fcn derives independently)."""
    assert (g["fcn_crop_pool4"], g["fcn_crop_pool3"]) == (
        fcn_module._OFFSET_POOL4,
        fcn_module._OFFSET_POOL3,
    )
    final = {32: g["fcn_crop_32s"], 16: g["fcn_crop_16s"], 8: g["fcn_crop_8s"]}
    assert final == fcn_module._OFFSET_FINAL


def test_fcn_table1(g) -> None:
    """The FCN paper's table 1, FCN-VGG16: rf size 404, max stride 32, 134M parameters."""
    r, j = 1, 1
    for v in [*VGG16_CFG, "fc6"]:
        k, s = {"M": (2, 2), "fc6": (7, 1)}.get(v, (3, 1))
        r, j = r + (k - 1) * j, j * s
    assert (g["fcn_field"], g["fcn_stride"], g["fcn_score_stride"]) == (r, j, j) == (404, 32, 32)
    vgg_params = torchvision.models.VGG16_Weights.IMAGENET1K_V1.meta["num_params"]
    fc8, score_fr = 4096 * 1000 + 1000, 4096 * 21 + 21
    assert g["fcn32_trainable"] == vgg_params - fc8 + score_fr
    assert round(g["fcn32_trainable_m"]) == 134
    assert g["fcn32_fixed"] == 21 * 21 * 64 * 64
    assert g["fcn8_last_factor"] == 8


def test_coarse_grids_and_bilinear_kernels(g) -> None:
    acc = [g[f"redraw_acc_{s}"] for s in (32, 16, 8)]
    assert g["redraw_bg_share"] < acc[0] < acc[1] < acc[2] < 1.0
    assert g["tent_diff"] < 1e-6 and g["bilinear_diff"] < 1e-5


# ---------------------------------------------------------------------------------------------
# U-Net


def unet_sides(tile: int, depth: int = 4) -> tuple[list[int], list[int], list[int], int]:
    """Figure 1 of the U-Net paper in plain torch on meta: the skips' sides, the upsampled
    sides they are cropped to (top level first), the bottom side and the output side."""
    x = torch.empty(1, 1, tile, tile, device="meta")
    convs = [nn.Conv2d(1, 1, 3, device="meta"), nn.Conv2d(1, 1, 3, device="meta")]
    skips = []
    for level in range(depth + 1):
        if level:
            x = nn.MaxPool2d(2)(x)
        x = convs[1](convs[0](x))
        skips.append(x.shape[-1])
    bottom = skips.pop()
    ups = []
    for _ in range(depth):
        x = nn.ConvTranspose2d(1, 1, 2, stride=2, device="meta")(x)
        ups.append(x.shape[-1])
        x = convs[1](convs[0](x))
    return skips, ups[::-1], bottom, x.shape[-1]


def test_unet_572_to_388(g) -> None:
    skips, ups, bottom, out = unet_sides(572)
    assert (g["unet_out"], g["unet_bottom"]) == (out, bottom) == (388, 28)  # the paper's figure
    assert g["unet_lost"] == (572 - out) // 2
    for level in range(4):
        assert g[f"unet_skip_{level}"] == skips[level]
        assert g[f"unet_up_{level}"] == ups[level]
        assert g[f"unet_margin_{level}"] == (skips[level] - ups[level]) // 2
    assert (g["unet_skip_0"], g["unet_up_0"]) == (568, 392)  # figure 1's top crop
    assert g["unet_sizes_match"] is True


def test_unet_tiles_and_params(g) -> None:
    tiles = [int(t) for t in g["unet_tiles"].split(", ")]
    assert 572 in tiles and g["unet_tile_step"] == 2**4
    assert all(b - a == 16 for a, b in zip(tiles, tiles[1:], strict=False))
    for t in tiles:  # every pooling meets an even side (the paper's condition)
        side = t - 4
        for _ in range(4):
            assert side % 2 == 0
            side = side // 2 - 4
    params = (3 * 3 * 1 + 1) * 64 + (3 * 3 * 64 + 1) * 64 + (64 + 1) * 2
    for c in (64, 128, 256, 512):
        params += (3 * 3 * c + 1) * 2 * c + (3 * 3 * 2 * c + 1) * 2 * c  # down
        params += (2 * 2 * 2 * c + 1) * c  # up-convolution
        params += (3 * 3 * 2 * c + 1) * c + (3 * 3 * c + 1) * c  # up
    assert g["unet_params"] == params


def test_unet_up_step_by_hand(g) -> None:
    assert g["up_diff"] == 0.0
    assert g["up_out_side"] == 2 * 12 - 4


# ---------------------------------------------------------------------------------------------
# Border weights and loss


def test_border_weight_at_one_pixel(g) -> None:
    """Eq. 2 of the U-Net paper at the heaviest gap pixel, from the distances the page found."""
    assert g["w_pixel_hand"] == pytest.approx(g["w_pixel_pkg"], abs=1e-4)
    assert g["w_objects"] >= 2 and 1 <= g["w_pixel_d1"] <= g["w_pixel_d2"]  # a background pixel
    border = 10 * math.exp(-((g["w_pixel_d1"] + g["w_pixel_d2"]) ** 2) / (2 * 5**2))
    assert g["w_border_max"] == pytest.approx(border, abs=1e-4)
    assert g["w_pixel_pkg"] == pytest.approx(g["w_background"] + border, abs=1e-4)
    assert 0 < g["w_border_max"] <= 10  # w0
    assert g["w_class_max"] > 1 > g["w_background"]  # rare shapes up, the background down
    assert g["loss_flat"] == pytest.approx(g["loss_flat_expected"], rel=1e-5)


# ---------------------------------------------------------------------------------------------
# The small U-Net


def test_small_unet_measures_from_its_confusion_matrix(g) -> None:
    """The page's accuracy and IoUs, recomputed from the confusion matrix it glued, whose rows
    must hold every pixel of the test masks, regenerated here, under its true class."""
    _, masks = make_shapes_seg(g["n_test"], image_size=32, seed=0, split="test")
    n = len(SEG_SHAPE_NAMES) + 1
    conf = torch.tensor(g["unet_confusion"], dtype=torch.float64)
    assert conf.shape == (n, n)
    assert conf.sum(1).tolist() == torch.bincount(masks.flatten(), minlength=n).tolist()
    hits = conf.diag()
    ious = [float(hits[c] / (conf[c].sum() + conf[:, c].sum() - hits[c])) for c in range(n)]
    assert g["unet_acc"] == pytest.approx(float(hits.sum() / conf.sum()))
    assert g["unet_miou"] == pytest.approx(sum(ious) / n)
    assert g["unet_iou_bg"] == pytest.approx(ious[0])
    by_shape = dict(zip(SEG_SHAPE_NAMES, ious[1:], strict=True))
    assert g["best_shape"] == max(by_shape, key=by_shape.get)
    assert g["worst_shape"] == min(by_shape, key=by_shape.get)
    assert g["best_shape_iou"] == pytest.approx(max(by_shape.values()))
    assert g["worst_shape_iou"] == pytest.approx(min(by_shape.values()))
    # The page's largest confusion: the largest share of one shape's pixels given to another.
    share, t, p = max(
        (float(conf[t, p] / conf[t].sum()), t, p)
        for t in range(1, n)
        for p in range(1, n)
        if t != p
    )
    assert (g["confused_true"], g["confused_pred"]) == (
        SEG_SHAPE_NAMES[t - 1],
        SEG_SHAPE_NAMES[p - 1],
    )
    assert g["confused_share"] == pytest.approx(share)
    # The page's claims: how many kinds of shape lose more pixels to the other kinds than to the
    # background, and most wrong pixels are shape pixels given another shape's class.
    to_shapes = sum(int(conf[t, 1:].sum() - conf[t, t] > conf[t, 0]) for t in range(1, n))
    kinds = len(SEG_SHAPE_NAMES)
    said = "every kind of shape loses" if to_shapes == kinds else f"{to_shapes} of the {kinds} "
    assert g["kinds_lost_to_shapes"].startswith(said)
    wrong = conf.sum() - hits.sum()
    shape_for_shape = conf[1:, 1:].sum() - hits[1:].sum()
    assert shape_for_shape > wrong / 2


def test_small_unet_beats_all_background(g) -> None:
    _, masks = make_shapes_seg(g["n_test"], image_size=32, seed=0, split="test")
    background = float((masks == 0).float().mean())
    assert g["n_test"] == len(masks) == 500
    assert g["base_acc"] == pytest.approx(background)
    assert g["base_miou"] == pytest.approx(background / (len(SEG_SHAPE_NAMES) + 1))
    assert g["n_steps"] == g["n_epochs"] * math.ceil(g["n_train"] / g["batch_size"])
    # The page's claims: more pixels right than the baseline, a mean IoU several times its
    # own, and every kind of shape with an IoU below the background's, above or below one half
    # as the page says.
    assert g["unet_acc"] > g["base_acc"]
    assert g["miou_ratio"] == pytest.approx(g["unet_miou"] / g["base_miou"])
    assert g["miou_ratio"] > 3
    assert g["unet_iou_bg"] > g["best_shape_iou"] >= g["worst_shape_iou"]
    half = "more" if g["worst_shape_iou"] > 0.5 else "less"
    assert g["worst_vs_half"] == f"{half} than one half"


def test_question_values(g) -> None:
    assert g["q_tc_side"] == meta_side([nn.ConvTranspose2d(1, 1, 3, 2, 1)], 7) == 13
    assert g["q_fc7_params"] == (4096 + 1) * 4096
    assert g["q_first_pool_side"] == 570 - 4
    assert g["q_second_pool_side"] == (570 - 4) // 2 - 4
    assert g["q_second_pool_side"] % 2 == 1  # odd: the second pooling would drop a row
