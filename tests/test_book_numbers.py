"""No result typed by hand in a chapter's prose: every multi-digit figure in a chapter's Markdown
comes through a glue role, unless it is a given of the page (an input size, a slide's example, a
layer's width), listed below per chapter with where it comes from.

A number that a page computes and then types into its prose goes stale the day the code changes;
this test finds it. It reads the committed notebooks (no execution).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

# Givens: numbers a page states as inputs (never as results). Shared by every chapter:
GIVEN = {
    "224": "ImageNet's input side",
    "28": "MNIST's side; the slides' 28x28x256 Inception input",
    "32": "CIFAR's side; the slides' 32x32x3 example",
    "100": "the slides' 100-unit dense layer, 100 maps, 100x100x3 input",
    "784": "28 x 28, the slides' MNIST input as they state it",
    "10": "ten classes",
    "16": "a layer width of the slides' examples",
    "64": "a layer width",
    "128": "a layer width",
    "256": "a layer width",
}
PER_CHAPTER: dict[str, dict[str, str]] = {
    "01_convolution": {
        "30": "pixel indices in an example sentence",
        "1.5": "the slide's stated value, quoted in the erratum",
        "0.5": "the slides' filter values",
        "45": "Sobel orientations in degrees",
        "90": "Sobel orientations in degrees",
        "135": "Sobel orientations in degrees",
        "180": "rotation of a kernel by 180 degrees",
        "56": "a question's given: 56x56 maps",
    },
    "02_parameters_and_cost": {
        "1024": "a hypothetical 1024x1024 input",
        "16.3": "the slide's stated multiplication count (16.3 million), quoted in the erratum",
    },
    "03_pooling": {
        "40": "the slides' 40x40x100 global-pooling example",
        "27": "AlexNet's 27x27 maps, a question's given",
    },
    "04_alexnet_vgg": {
        "2012": "AlexNet's year (Krizhevsky et al. 2012)",
        "2014": "the ImageNet challenge in which VGG came second",
        "3.5": "a section number of the AlexNet paper",
        "11": "AlexNet's 11x11 conv1 kernel, as the paper and slides state it",
        "55": "the 55x55 conv1 maps, as the AlexNet paper states them",
        "227": "the input side that the paper's unpadded conv1 needs (the layout's input)",
        "253,440": "the AlexNet paper's stated conv1 neuron count, quoted in the erratum",
        "96": "AlexNet's conv1 width and conv2 depth, as the paper and slides state them",
        "192": "torchvision AlexNet's conv2 width, a given of the layout",
        "48": "AlexNet's conv2 filter depth per GPU, as the paper states it",
        "112": "VGG's second-block map side, a given of the layout",
        "512": "a layer width",
        "4096": "the dense layers' width",
        "18": "the slides' 3x3 + 3x3 weight count, quoted and recomputed",
        "25": "the slides' 5x5 weight count, quoted and recomputed",
        "45": "the slides' five-3x3 weight count, quoted and recomputed",
        "121": "the slides' 11x11 weight count, quoted and recomputed",
        "60": "the slides' AlexNet parameter count (60 million), quoted",
        "61": "AlexNet's usually quoted 61 million parameters, quoted",
        "138": "the VGG paper's VGG-16 parameter count in millions, quoted",
        "144": "the VGG paper's VGG-19 parameter count in millions, quoted",
        "15.3": "the slides' VGG-16 multiply-adds (x 10^9), quoted in the erratum",
        "19.6": "the slides' VGG-19 multiply-adds (x 10^9), quoted in the erratum",
        "384": "AlexNet's conv3-5 width, as the slides state it (quoted in the erratum)",
        "13": "the slides' numbering of VGG's convolutions (13-16), quoted",
    },
    "05_inception": {
        "2014": "the ImageNet challenge that GoogLeNet won (Szegedy et al.), and its year",
        "192": "the slides' 28x28x192 input and module 3a's input channels, givens",
        "96": "the slides' 96 5x5 filters and module 3a's #3x3 reduce, givens",
        "48": "the slides' 48 5x5 filters (module 4a's #5x5), a given",
        "14": "the 14x14 maps of GoogLeNet's fourth stage, a given of the layout",
        "480": "module 4a's input channels, the slides' 14x14x480 example",
        "12": "the slides' 12.4M, quoted and recomputed",
        "112": "the slides' 112.9M, quoted and recomputed; conv1's 112x112 output",
        "40": "the paper's 40% dropout before the classifier",
        "1024": "the channels of GoogLeNet's last maps; the paper's unit K = 1024",
        "1000": "ImageNet's 1000 classes; the paper's printed 1000K",
        "22": "the paper's 22 layers, quoted and recomputed",
        "1.5": "the paper's 1.5 billion multiply-adds, quoted in the erratum",
        "4096": "the width of AlexNet's and VGG's dense layers",
        "70": "the auxiliary heads' 70% dropout (the paper)",
        "0.3": "the weight of the auxiliary losses (the paper)",
        "17": "Inception v3's 17x17 grid, a given of its layout",
        "35": "Inception v3's 35x35 grid, a given of its layout",
        "299": "Inception v3's input side",
        "672": "the slide's stated naive-module depth, quoted in the erratum",
        "2.7": "the paper's printed conv1 params (2.7K), quoted in the erratum",
    },
    "06_resnet": {
        "2015": "the year of the ResNet paper and of the ImageNet challenge it won",
        "152": "ResNet-152's depth, the winning network's 152 layers (the paper, the slides)",
        "20": "the paper's plain-20 (its figure 1), a given depth",
        "56": "the paper's plain-56 (its figure 1); ResNet's 56x56 first-stage grid, a given",
        "4.1": "a section number of the ResNet paper",
        "4.2": "a section number of the ResNet paper",
        "1000": "ImageNet's 1000 classes",
        "1202": "ResNet-1202's depth, the slides' 1202 layers on CIFAR, quoted and recomputed",
        "1.7": "the slides' ResNet-110 parameters (millions), quoted and recomputed",
        "1.8": "the slide's stated ResNet-18 FLOPs (x 10^9), quoted in the erratum",
        "3.6": "the slide's stated ResNet-34 FLOPs (x 10^9), quoted in the erratum",
        "3.8": "the slide's stated ResNet-50 FLOPs (x 10^9), quoted in the erratum",
        "7.6": "the slide's stated ResNet-101 FLOPs (x 10^9), quoted in the erratum",
        "11.3": "the slide's stated ResNet-152 FLOPs (x 10^9), quoted in the erratum",
        "1024": "a question's given: the 1024-channel maps of ResNet-50's third stage",
        "14": "a question's given: the 14x14 maps of ResNet-50's third stage",
    },
    "07_densenet": {
        "12": "the growth rate k = 12 of DenseNet-BC (L=100, k=12), a given",
        "24": "the growth rate k = 24 of DenseNet-BC (L=250, k=24); 24 input channels, a given",
        "0.5": "the compression theta = 0.5 of DenseNet-BC, a given",
        "36": "the 36k^2 weights of the bottleneck's 3x3 conv in the crossover's algebra",
        "384": "an input width of the bottleneck table, a given",
        "110": "ResNet-110's depth, its name (the slide's 110 layers)",
        "111": "ResNet-1001's 111 bottleneck units per stage, a given of its layout",
        "250": "DenseNet-BC (L=250)'s depth, its name (the slide's 250 layers)",
        "1001": "ResNet-1001's depth, its name (the slide's 1001 layers)",
        "1.7": "the slide's stated ResNet-110 parameters (millions), quoted and recomputed",
        "0.8": "the slide's stated DenseNet-BC-100 parameters (millions), quoted and recomputed",
        "15.3": "the slide's stated DenseNet-BC-250 parameters (millions), quoted and recomputed",
        "10.2": "the slide's stated ResNet-1001 parameters (millions), quoted in the erratum",
        "7.0": "the DenseNet paper's table 2 figure for DenseNet (L=100, k=12), quoted",
        "20.27": "the slide's stated ImageNet top-1 error, quoted (not recomputable)",
        "5.17": "the slide's stated ImageNet top-5 error, quoted (not recomputable)",
        "48": "4k = 48 inputs of the bottleneck for k = 12, a question's given",
    },
    "08_separable": {
        "512": "a layer width (MobileNet's 512-channel layers)",
        "299": "Xception's input side",
        "728": "the width of Xception's middle flow, a given of its layout",
        "19": "Xception's 19x19 middle-flow grid, a given of its layout",
        "2048": "the width of Xception's exit flow, a given of its layout",
        "1024": "the width of MobileNet v1's last layers, a given of its layout",
        "22,855,952": "the Xception paper's table 3 parameter count, quoted and recomputed",
        "569": "the MobileNet paper's 569 million mult-adds (table 8), quoted and recomputed",
        "4.2": "the MobileNet paper's 4.2 million parameters (table 8), quoted and recomputed",
        "1.19": "the MobileNet paper's table 2 share of the full conv, quoted in the erratum",
        "1000": "ImageNet's 1000 classes (the classifier's biases)",
        "192": "a MobileNet input side of the paper's table 7, a given",
        "160": "a MobileNet input side of the paper's table 7, a given",
        "56": "a question's given: a 56x56 grid",
        "16.3": "the slide's stated multiplication count (16.3 million), quoted in the erratum",
    },
    "09_segmentation": {
        "18": "the side of the page's small classifier's input (18x18), a given",
        "34": "the side of the larger input given to that classifier (34x34)",
        "12": "the side of the low map in the hand-built up step (12x12), a given",
        "30": "the side of the skip map in the hand-built up step (30x30), a given",
        "180": "rotation of a kernel by 180 degrees",
        "500": "PASCAL VOC's largest image side, FCN's example input",
        "20": "PASCAL VOC's 20 object classes",
        "21": "PASCAL VOC's 21 classes (20 and the background), FCN's output width",
        "512": "a layer width (VGG's last convolutions, U-Net's fourth level)",
        "4096": "the width of VGG's dense layers fc6 and fc7",
        "1024": "the width of U-Net's bottom level, a given of its layout",
        "404": "the FCN paper's table 1 receptive field, quoted and recomputed",
        "572": "the U-Net paper's input tile (its figure 1)",
        "570": "a question's given: a tile side that U-Net refuses",
    },
    "10_comparing": {
        "2016": "the year of Canziani et al.'s comparison, a citation",
        "1.8": "the slides' ResNet-18 operation count, quoted in the erratum",
        "3.6": "the slides' ResNet-34 operation count, quoted in the erratum",
        "3.8": "the slides' ResNet-50 operation count, quoted in the erratum",
        "7.6": "the slides' ResNet-101 operation count, quoted in the erratum",
        "11.3": "the slides' ResNet-152 operation count, quoted in the erratum",
        "15.3": "the slides' VGG-16 operation count, quoted in the erratum",
        "19.6": "the slides' VGG-19 operation count, quoted in the erratum",
        "6.67": "the slides' GoogLeNet top-5 error (ILSVRC entry), quoted in the erratum",
        "16.4": "the slides' AlexNet top-5 error (ILSVRC entry), quoted in the erratum",
    },
}
STRIP = [
    r"^(?:```|~~~).*$",  # fence lines (an admonition's body is prose, and is scanned)
    r"\{glue[^}]*\}`[^`]*`",  # the figures that come from code
    r"\{[a-z:]+\}`[^`]*`",  # other roles: citations, cross-references
    r"`[^`]*`",  # inline code
    r"\]\([^)]*\)",  # link targets
    r"^:[\w-]+:.*$",  # directive options (:name:, :class:, :alt: is checked by the tests of
    #                   each chapter against the glued values it describes)
    r"^#+ .*$",  # headings
]
NUMBER = re.compile(r"(?<![\w.,\\-])\d[\d,.]*(?:\\,\d+)*\d(?![\w])")


def typed_numbers(markdown: str) -> list[str]:
    """The multi-digit numbers of `markdown` outside glue roles, code, links and options."""
    for pattern in STRIP:
        markdown = re.sub(pattern, " ", markdown, flags=re.MULTILINE)
    return [n.rstrip(".,") for n in NUMBER.findall(markdown)]


def test_the_scanner_finds_a_typed_result_and_spares_the_glued_one() -> None:
    text = "The layer has 608 parameters, or {glue:text}`p:,d`; see `conv(3, 8)` and [x](a/12.md)."
    assert typed_numbers(text) == ["608"]
    assert typed_numbers("a $160\\,000$-value volume; VGG-16, ResNet-110") == ["160\\,000"]
    # inside an admonition (a fenced directive), the prose is scanned as any other
    assert typed_numbers(
        "```{admonition} Erratum\n:class: note\nThe slide says 358 million.\n```"
    ) == ["358"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_result_is_typed_by_hand(path: Path) -> None:
    allowed = GIVEN | PER_CHAPTER.get(path.stem, {})
    found = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            found += [f"cell {i}: {n}" for n in typed_numbers(cell.source) if n not in allowed]
    assert not found, f"{path.name}: figures typed by hand (glue them): {found}"
