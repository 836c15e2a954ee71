"""`cnncourse.data`: real formats round-trip, synthetic data is sound, DeviceLoader is honest.

The real datasets are never downloaded here: `data_formats.py` writes tiny copies in their real
on-disk formats and torchvision's own classes read them. torchvision checks some files against the
md5 of the real ones (CIFAR-10's batches, every downloaded archive); those tests swap in the md5s
of the fake files on torchvision's class attributes (`monkeypatch`, undone after the test), so the
code path is exactly a user's. A guard makes any attempt to reach the network fail the test.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.datasets.utils as tv_utils
from data_formats import write_cifar10, write_mnist, write_oxford_pet
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, Subset
from torchvision import datasets

from cnncourse.data import (
    DATASETS,
    DeviceLoader,
    crop_flip,
    get_dataset,
    make_shapes,
    make_shapes_seg,
    to_tensors,
    trimap_to_mask,
)
from cnncourse.data.device import reflect_index
from cnncourse.data.synthetic import draw_shapes

REAL = ("mnist", "fashion_mnist", "cifar10", "oxford_pet")
MNIST_LIKE = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # name -> torchvision folder


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to use the network")

    for name in ("_urlretrieve", "_get_redirect_url"):
        monkeypatch.setattr(tv_utils, name, refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def pixels(image: torch.Tensor, name: str) -> np.ndarray:
    """A normalised item back to uint8 HWC (or HW for one channel), as it was on disk."""
    x = (DATASETS[name].denormalize(image) * 255).round().to(torch.uint8)
    return x.permute(1, 2, 0).squeeze(-1).numpy()


# --- names, splits, info -------------------------------------------------------------------------


def test_unknown_name_and_split_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="cifar10, fashion_mnist, mnist, oxford_pet, shapes"):
        get_dataset("cifar100")
    with pytest.raises(ValueError, match="train, test"):
        get_dataset("shapes", "val")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_info_is_consistent(name: str) -> None:
    info = DATASETS[name]
    assert info.name == name
    assert len(info.mean) == len(info.std) == info.in_channels
    assert len(info.classes) == info.num_classes
    x = torch.rand(2, info.in_channels, 5, 5)
    torch.testing.assert_close(info.denormalize(info.normalize(x)), x)


@pytest.mark.parametrize("name", REAL)
def test_missing_files_name_root_and_download(name: str, tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="download=True") as err:
        get_dataset(name, root=root)
    assert str(root) in str(err.value)


# --- MNIST, Fashion-MNIST ------------------------------------------------------------------------


@pytest.mark.parametrize("name", MNIST_LIKE)
def test_mnist_like_round_trip(name: str, tmp_path: Path) -> None:
    fake = write_mnist(tmp_path, folder=MNIST_LIKE[name])
    for split in ("train", "test"):
        ds = get_dataset(name, split, root=tmp_path)
        assert len(ds) == len(fake.targets[split])
        image, label = ds[3]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
        assert isinstance(label, int) and label == fake.targets[split][3]
        np.testing.assert_array_equal(pixels(image, name), fake.images[split][3])
        x, y = to_tensors(ds, progress=False)
        assert x.shape == (len(ds), 1, 28, 28) and y.dtype == torch.long
        np.testing.assert_array_equal(y.numpy(), fake.targets[split])
    raw, _ = get_dataset(name, root=tmp_path, normalize=False)[0]
    torch.testing.assert_close(raw[0], torch.from_numpy(fake.images["train"][0]).float() / 255)


def test_mnist_gz_only_needs_download_which_works_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torchvision reads the decompressed files; the .gz alone count as "not found" ...
    fake = write_mnist(tmp_path, decompressed=False)
    with pytest.raises(FileNotFoundError, match="download=True"):
        get_dataset("mnist", root=tmp_path)
    # ... and download=True decompresses them without downloading when their md5 matches.
    resources = [(name, fake.md5s[name]) for name, _ in datasets.MNIST.resources]
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    ds = get_dataset("mnist", "test", root=tmp_path, download=True)
    np.testing.assert_array_equal(pixels(ds[1][0], "mnist"), fake.images["test"][1])


# --- CIFAR-10 ------------------------------------------------------------------------------------


def patch_cifar_md5s(monkeypatch: pytest.MonkeyPatch, md5s: dict[str, str]) -> None:
    """Make torchvision's CIFAR10 expect the fake files' md5s instead of the real ones."""
    cls = datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5s[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5s[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5s["batches.meta"]})
    monkeypatch.setattr(cls, "tgz_md5", md5s["cifar-10-python.tar.gz"])


def test_cifar10_files_are_md5_checked(tmp_path: Path) -> None:
    write_cifar10(tmp_path)  # right names and format, but not the real files' md5s
    with pytest.raises(FileNotFoundError, match="corrupted"):
        get_dataset("cifar10", root=tmp_path)


def test_cifar10_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = write_cifar10(tmp_path)
    patch_cifar_md5s(monkeypatch, fake.md5s)
    for split, n in (("train", 20), ("test", 4)):
        ds = get_dataset("cifar10", split, root=tmp_path)
        assert len(ds) == n
        for i in (0, n - 1):
            image, label = ds[i]
            assert image.shape == (3, 32, 32) and label == fake.targets[split][i]
            np.testing.assert_array_equal(pixels(image, "cifar10"), fake.images[split][i])


def test_cifar10_download_extracts_the_archive_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_cifar10(tmp_path, archive_only=True)
    patch_cifar_md5s(monkeypatch, fake.md5s)
    ds = get_dataset("cifar10", "test", root=tmp_path, download=True)
    np.testing.assert_array_equal(pixels(ds[2][0], "cifar10"), fake.images["test"][2])


class ItemByItem(Dataset):
    """Hides the dataset's type, so `to_tensors` must read it one item at a time."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple:
        return self.dataset[i]


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_to_tensors_fast_path_matches_item_by_item(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "mnist":
        write_mnist(tmp_path)
    else:
        patch_cifar_md5s(monkeypatch, write_cifar10(tmp_path).md5s)
    ds = get_dataset(name, root=tmp_path)
    fast = to_tensors(ds, progress=False)
    slow = to_tensors(ItemByItem(ds), progress=False, batch_size=7)
    torch.testing.assert_close(fast, slow, rtol=0, atol=0)
    assert fast[0].is_contiguous()
    # A subset (get_dataset's `n`) takes the fast path too, and keeps only its items.
    subset = get_dataset(name, root=tmp_path, n=5)
    assert isinstance(subset, Subset) and len(subset) == 5
    torch.testing.assert_close(to_tensors(subset), (fast[0][:5], fast[1][:5]), rtol=0, atol=0)
    torch.testing.assert_close(to_tensors(ItemByItem(subset)), to_tensors(subset), rtol=0, atol=0)


# --- Oxford-IIIT Pet -----------------------------------------------------------------------------


def interior(mask: torch.Tensor, margin: int = 2) -> torch.Tensor:
    """Pixels at least `margin` pixels away from any pixel of another class (H, W) bool."""
    inside = torch.zeros_like(mask, dtype=torch.bool)
    for c in mask.unique():
        region = (mask == c).float()[None]  # erode: min over the window = -max(-x)
        inside |= -F.max_pool2d(-region, 2 * margin + 1, 1, margin)[0] == 1
    return inside


def test_trimap_mapping() -> None:
    trimap = torch.tensor([[1, 2, 3]], dtype=torch.uint8)
    assert trimap_to_mask(trimap).tolist() == [[1, 0, 2]]  # pet -> 1, background -> 0, border -> 2
    with pytest.raises(ValueError, match=r"\[0\]"):
        trimap_to_mask(torch.tensor([[0, 1]]))


def test_oxford_pet_round_trip_at_native_size(tmp_path: Path) -> None:
    fake = write_oxford_pet(tmp_path, sizes=((48, 64),))
    for split, n in (("train", 8), ("test", 4)):
        ds = get_dataset("oxford_pet", split, root=tmp_path, image_size=(48, 64))
        assert len(ds) == n
        image, mask = ds[n - 1]
        assert image.shape == (3, 48, 64) and mask.shape == (48, 64) and mask.dtype == torch.long
        trimap = torch.from_numpy(fake.targets[split][n - 1])
        assert torch.equal(mask, trimap_to_mask(trimap))  # lossless PNG: exact
        # JPEG is lossy, most of all at colour edges (chroma subsampling): inside the flat
        # regions the colours come back almost exactly.
        error = np.abs(pixels(image, "oxford_pet").astype(int) - fake.images[split][n - 1])
        assert error[interior(mask).numpy()].mean() < 2
        assert error.mean() < 8


def test_oxford_pet_resize_keeps_mask_aligned(tmp_path: Path) -> None:
    fake = write_oxford_pet(tmp_path, sizes=((48, 64),))
    image, mask = get_dataset("oxford_pet", "test", root=tmp_path, image_size=(96, 128))[0]
    assert image.shape == (3, 96, 128)
    # Upsampling by exactly 2 with nearest-exact duplicates every trimap pixel into a 2 x 2 block.
    trimap = torch.from_numpy(fake.targets["test"][0]).long()
    expected = trimap_to_mask(trimap.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert torch.equal(mask, expected)
    # The image is resized with the mask: each class region keeps the colour it had on disk.
    colours = pixels(image, "oxford_pet").astype(int)
    photo = fake.images["test"][0].repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(colours - photo)[interior(mask).numpy()].mean() < 3


def test_oxford_pet_default_size_and_to_tensors(tmp_path: Path) -> None:
    write_oxford_pet(tmp_path)  # two different photo sizes
    x, y = to_tensors(get_dataset("oxford_pet", root=tmp_path), progress=False)
    assert x.shape == (8, 3, 128, 128) and y.shape == (8, 128, 128)
    assert set(y.unique().tolist()) == {0, 1, 2}


def test_oxford_pet_download_extracts_archives_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_oxford_pet(tmp_path, sizes=((48, 64),))
    base = tmp_path / "oxford-iiit-pet"
    shutil.rmtree(base / "images")
    shutil.rmtree(base / "annotations")
    cls = datasets.OxfordIIITPet
    resources = tuple((url, fake.md5s[url.rsplit("/", 1)[1]]) for url, _ in cls._RESOURCES)
    monkeypatch.setattr(cls, "_RESOURCES", resources)
    _, mask = get_dataset("oxford_pet", root=tmp_path, download=True, image_size=(48, 64))[0]
    assert torch.equal(mask, trimap_to_mask(torch.from_numpy(fake.targets["train"][0])))


# --- synthetic -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make_shapes, make_shapes_seg])
def test_synthetic_is_deterministic(make) -> None:
    a, b = make(n=50, seed=3), make(n=50, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], make(n=50, seed=4)[0])
    assert not torch.equal(a[0], make(n=50, seed=3, split="test")[0])


def test_shapes_items_balance_and_statistics() -> None:
    ds = get_dataset("shapes")  # the default 10,000 images
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)
    x, y = to_tensors(ds)
    assert torch.bincount(y, minlength=10).tolist() == [1000] * 10
    # Normalised with DATASETS["shapes"]: about zero mean and unit variance per channel. (Images
    # differ mostly by their background colour, so the sampling error is ~0.01 here.)
    assert x.mean((0, 2, 3)).abs().max() < 0.05
    assert (x.std((0, 2, 3)) - 1).abs().max() < 0.05


def test_shapes_are_drawn_anywhere_in_two_colours() -> None:
    x, y = make_shapes(n=500, noise=0.0)
    bg = x[:, :, 0, 0]  # the corners are always background (a shape is at most 0.9 x its box)
    fg = (x != bg[:, :, None, None]).any(1)  # (N, H, W) shape pixels
    assert fg.flatten(1).any(1).all()  # every image has a shape
    assert all(len(img.flatten(1).unique(dim=1).T) == 2 for img in x[:20])  # bg + one colour
    # Shapes move around: the centroid of the shape pixels varies by several pixels.
    grid = torch.arange(32.0)
    cy = (fg.sum(2) * grid).sum(1) / fg.sum((1, 2))
    cx = (fg.sum(1) * grid).sum(1) / fg.sum((1, 2))
    assert cy.std() > 3 and cx.std() > 3


def test_shapes_seg_masks_lie_exactly_on_shape_pixels() -> None:
    ds = get_dataset("shapes_seg", n=100, noise=0.0, normalize=False)
    image, mask = ds[0]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.long
    x, m = to_tensors(ds)
    assert m.min() >= 0 and m.max() <= 5 and set(m.unique().tolist()) == set(range(6))
    bg = x[:, :, 0, 0]
    is_bg = (x == bg[:, :, None, None]).all(1)
    assert torch.equal(is_bg, m == 0)  # mask 0 <=> background colour, pixel for pixel
    assert (m > 0).flatten(1).any(1).all()


@pytest.mark.parametrize("make", [make_shapes, make_shapes_seg])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n": -5}, "n must be an integer >= 1, got -5"),
        ({"image_size": 0}, "image_size must be an integer >= 8, got 0"),
        ({"image_size": 4}, "image_size must be an integer >= 8, got 4"),
        ({"image_size": 32.0}, "image_size must be an integer"),
        ({"noise": -0.1}, "noise must be >= 0"),
        # A half-size over 0.5 x the image would draw part of the shape outside it.
        ({"scale": (0.3, 0.6)}, r"scale must be .* <= 0\.5.*got \(0\.3, 0\.6\)"),
        ({"scale": (0.0, 0.3)}, "scale must be"),
        ({"scale": (0.3, 0.2)}, "scale must be"),
    ],
)
def test_synthetic_refuses_bad_arguments(make, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_shapes_stay_inside_the_image_up_to_the_largest_scale() -> None:
    """At half-size 0.5 x S a shape's box is the whole image: a disk then touches all four
    sides, centred, and no pixel of it is lost (its area is that of a centred disk)."""
    x, y = make_shapes(n=10, image_size=32, noise=0.0, scale=(0.5, 0.5))
    disk = x[y == 0][0]
    fg = (disk != disk[:, :1, :1]).any(0)  # the corner is background
    grid = torch.arange(32) + 0.5
    expected = ((grid[:, None] - 16) ** 2 + (grid[None, :] - 16) ** 2 <= 16**2).sum()
    assert fg.sum() == expected and fg[0].any() and fg[-1].any() and fg[:, 0].any()
    with pytest.raises(ValueError, match="n must be"):
        get_dataset("shapes", n=0)  # not the whole dataset


def test_draw_shapes_matches_its_mask() -> None:
    gen = torch.Generator().manual_seed(0)
    images, masks = torch.zeros(10, 3, 16, 16), torch.zeros(10, 16, 16, dtype=torch.long)
    labels = torch.arange(10)
    draw_shapes(images, masks, labels, torch.zeros(10, 3), (0.3, 0.45), gen)
    assert torch.equal((images > 0).all(1), masks > 0)
    assert torch.equal(masks.flatten(1).max(1).values, labels + 1)


# --- DeviceLoader --------------------------------------------------------------------------------


def indexed(n: int = 10, seg: bool = False, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels all equal the sample's index, so a batch says which samples it holds."""
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 2, size, size)
    targets = torch.arange(n)
    if seg:
        targets = targets[:, None, None].expand(n, size, size)
    return images.contiguous(), targets.contiguous()


@pytest.mark.parametrize("seg", [False, True])
def test_loader_covers_each_sample_once_per_epoch(seg: bool) -> None:
    loader = DeviceLoader(*indexed(10, seg), batch_size=3, shuffle=True)
    assert len(loader) == 4
    orders = []
    for _ in range(2):
        batches = list(loader)
        assert [len(x) for x, _ in batches] == [3, 3, 3, 1]
        seen = torch.cat([x[:, 0, 0, 0] for x, _ in batches]).long()
        assert torch.equal(seen.sort().values, torch.arange(10))
        assert torch.equal(seen, torch.cat([t.reshape(len(t), -1)[:, 0] for _, t in batches]))
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1])  # each epoch has its own shuffle


def test_loader_drop_last_and_no_shuffle() -> None:
    loader = DeviceLoader(*indexed(10), batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 2
    assert [y.tolist() for _, y in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DeviceLoader(*indexed(8), batch_size=4, drop_last=True)) == 2
    assert len(DeviceLoader(*indexed(8), batch_size=4, drop_last=False)) == 2


def test_loader_is_deterministic_per_seed_and_epoch() -> None:
    x, y = make_shapes_seg(n=12, image_size=16)

    def epoch(seed: int, e: int) -> list[torch.Tensor]:
        loader = DeviceLoader(x, y, batch_size=5, augment=True, seed=seed, device="cpu")
        loader.set_epoch(e)
        return [t for batch in loader for t in batch]

    a = epoch(0, 2)
    assert all(torch.equal(s, t) for s, t in zip(a, epoch(0, 2), strict=True))
    assert not all(torch.equal(s, t) for s, t in zip(a, epoch(1, 2), strict=True))
    assert not all(torch.equal(s, t) for s, t in zip(a, epoch(0, 3), strict=True))
    loader = DeviceLoader(x, y, batch_size=5, augment=True)
    for _ in range(2):  # epochs 0 and 1
        list(loader)
    assert loader.epoch == 2
    assert all(torch.equal(s, t) for s, t in zip(a, [t for b in loader for t in b], strict=True))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(3, 9), w=st.integers(3, 9), pad=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_crop_flip_equals_reflect_pad_crop_flip(h: int, w: int, pad: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(4, 2, h, w, generator=gen)
    masks = torch.randint(0, 5, (4, h, w), generator=gen)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, 4), generator=gen)
    flip = torch.rand(4, generator=gen) < 0.5
    out, out_masks = crop_flip(images, masks, dy, dx, flip, pad)
    padded = F.pad(images, [pad] * 4, mode="reflect")
    for i in range(4):
        ref = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        ref = ref.flip(-1) if flip[i] else ref
        assert torch.equal(out[i], ref)
    # The mask goes through exactly the same crop and flip (reflect pad as float, then back).
    as_image, _ = crop_flip(masks[:, None].float(), masks[:, 0, 0], dy, dx, flip, pad)
    assert torch.equal(out_masks, as_image[:, 0].long())


def test_reflect_index() -> None:
    assert reflect_index(torch.arange(-2, 7), 5).tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]


def test_augment_keeps_images_and_masks_aligned() -> None:
    x, m = make_shapes_seg(n=64, image_size=32, noise=0.0)
    bg = x[:, :, 0, 0]  # (N, 3) background colours; shapes never reach a corner
    loader = DeviceLoader(x, m, batch_size=16, shuffle=False, augment=True, seed=1)
    moved = 0
    for i, (images, masks) in enumerate(loader):
        assert images.shape == (16, 3, 32, 32) and masks.shape == (16, 32, 32)
        s = slice(16 * i, 16 * (i + 1))
        # Reflection and flips move pixels, never recolour them: background stays background, and
        # after the crop and flip the mask still says exactly which pixels are background.
        is_bg = (images == bg[s, :, None, None]).all(1)
        assert torch.equal(is_bg, masks == 0)
        moved += int((masks != m[s]).flatten(1).any(1).sum())
    assert moved > 32  # most samples were shifted or flipped


def test_augment_leaves_labels_alone() -> None:
    x, y = indexed(10)
    labels = torch.cat([y for _, y in DeviceLoader(x, y, batch_size=4, augment=True, seed=2)])
    images = torch.cat([x for x, _ in DeviceLoader(x, y, batch_size=4, augment=True, seed=2)])
    assert torch.equal(images[:, 0, 0, 0].long(), labels)  # a constant image stays constant


def test_loader_validates_shapes() -> None:
    x, y = indexed(10)
    with pytest.raises(ValueError, match="targets"):
        DeviceLoader(x, y[:5], batch_size=2)
    with pytest.raises(ValueError, match="images"):
        DeviceLoader(x[0], y, batch_size=2)
    with pytest.raises(ValueError, match="pad"):
        DeviceLoader(x[:, :, :3, :3], y, batch_size=2, augment=True)
