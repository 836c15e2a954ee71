"""The model zoo page's claims, read from the build's glued values, against torchvision and the
papers: the one mismatch is GoogLeNet's auxiliary heads, FCN-VGG16 trains the paper's 134M."""

from __future__ import annotations

import torchvision

from book_build import BookBuild

PAGE = "book/model_zoo"


def test_googlenet_differs_from_torchvision_by_its_auxiliary_heads_only(book: BookBuild) -> None:
    g = book.glued(PAGE)
    assert g["mismatched_models"] == ["googlenet"]
    assert g["googlenet_gap_is_aux"] is True
    # torchvision's inference GoogLeNet, built with its aux heads, is larger by exactly them
    with_aux = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    aux = sum(p.numel() for h in (with_aux.aux1, with_aux.aux2) for p in h.parameters())
    published = torchvision.models.GoogLeNet_Weights.DEFAULT.meta["num_params"]
    assert sum(p.numel() for p in with_aux.parameters()) - aux == published


def test_fcns_train_the_papers_134_million_parameters(book: BookBuild) -> None:
    # Long et al. 2015, Table 1: FCN-VGG16 has 134M parameters
    assert book.glued(PAGE)["fcn_trainable_millions"] == [134]


def test_the_largest_model_in_parameters_is_a_vgg19(book: BookBuild) -> None:
    """The page's introduction says so; torchvision's published counts agree."""
    largest = book.glued(PAGE)["largest_model"]
    names = ("vgg19_bn", "vgg19", "vgg16_bn", "alexnet", "inception_v3", "resnet152")
    counts = {
        name: torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
        for name in names
    }
    assert largest == max(counts, key=counts.get) == "vgg19_bn"
