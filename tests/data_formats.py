"""Tiny fake copies of the real datasets, written in their real on-disk formats.

Each writer lays files out exactly as a torchvision download leaves them (same folders, names and
encodings, plus the archives they came from), fills them with known random pixels and labels, and
returns those, so a test can check that loading round-trips them. `md5s` maps each file name to the
md5 of the fake file: torchvision checks CIFAR-10's batches and every downloaded archive against the
md5 of the *real* files, and a test that loads a fake copy must swap in these values (see
`tests/test_data.py`); nothing else is changed.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Fake:
    """What a writer put on disk: pixels (N, H, W[, C]) uint8 and targets, per split."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    md5s: dict[str, str] = field(default_factory=dict)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _tar_gz(archive: Path, folder: Path, arcname: str) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname)


# --- MNIST / Fashion-MNIST: IDX files (big-endian header, then raw uint8), gzipped ---------------


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: magic 0x0000 08 <ndim> (08 = unsigned byte), ndim big-endian int32 sizes, the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(
    root: Path, folder: str = "MNIST", n: dict[str, int] | None = None, decompressed: bool = True
) -> Fake:
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (+ decompressed copies)."""
    n = n or {"train": 20, "test": 10}
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    fake = Fake()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = rng.integers(0, 256, (n[split], 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n[split], dtype=np.uint8)
        fake.images[split], fake.targets[split] = images, labels
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
            fake.md5s[f"{name}.gz"] = md5(raw / f"{name}.gz")
            if decompressed:
                (raw / name).write_bytes(idx_bytes(array))
    return fake


# --- CIFAR-10: pickled dicts of numpy arrays, in cifar-10-batches-py/, from a .tar.gz ------------


def write_cifar10(root: Path, per_batch: int = 4, archive_only: bool = False) -> Fake:
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, and the archive
    root/cifar-10-python.tar.gz they come from (alone if `archive_only`).

    Each batch is a dict {"batch_label", "labels", "data", "filenames"}; "data" is uint8
    (N, 3072): the 1024 red values of a 32 x 32 image row by row, then green, then blue.
    """
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    fake = Fake()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    all_images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    all_labels: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for name in names:
        split = "test" if name == "test_batch" else "train"
        hwc = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch)
        batch = {
            "batch_label": f"fake {name}",
            "labels": [int(v) for v in labels],  # the real files hold a list of ints
            "data": hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072),  # channel planes
            "filenames": [f"img_{i}.png" for i in range(per_batch)],
        }
        # The real batches are Python 2 pickles; protocol 2 with str keys reads back the same way.
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        all_images[split].append(hwc)
        all_labels[split].append(labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": ["c0", "c1", "c2", "c3", "c4",
            "c5", "c6", "c7", "c8", "c9"], "num_vis": 3072}  # fmt: skip
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    for name in [*names, "batches.meta"]:
        fake.md5s[name] = md5(folder / name)
    for split in ("train", "test"):
        fake.images[split] = np.concatenate(all_images[split])
        fake.targets[split] = np.concatenate(all_labels[split])
    _tar_gz(root / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    fake.md5s["cifar-10-python.tar.gz"] = md5(root / "cifar-10-python.tar.gz")
    if archive_only:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return fake


# --- Oxford-IIIT Pet: JPEG photos, PNG trimaps, split lists --------------------------------------

PET_BREEDS = ("Abyssinian", "Bengal", "beagle", "pug")  # cats are capitalised, dogs are not


def pet_trimap(h: int, w: int, seed: int) -> np.ndarray:
    """A trimap as the real ones: 1 pet (an ellipse), 3 its 2-pixel outline band, 2 background."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.35, 0.65, 2) * (h, w)
    ry, rx = rng.uniform(0.2, 0.3, 2) * (h, w)
    y, x = np.mgrid[:h, :w] + 0.5
    d = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    trimap = np.full((h, w), 2, np.uint8)
    trimap[d <= 1.15] = 3
    trimap[d <= 1.0] = 1
    return trimap


def pet_photo(trimap: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo with one flat colour per trimap region (JPEG-friendly), and the colours."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, (4, 3), dtype=np.uint8)  # row v: colour of trimap value v
    return colours[trimap], colours


def write_oxford_pet(root: Path, sizes: tuple[tuple[int, int], ...] = ((48, 64), (64, 40))) -> Fake:
    """root/oxford-iiit-pet/{images/<id>.jpg, annotations/trimaps/<id>.png, annotations/*.txt}.

    Lines of trainval.txt / test.txt: "<id> <class 1..37> <species 1 cat, 2 dog> <breed id>".
    Also writes images.tar.gz and annotations.tar.gz, as they are downloaded.
    """
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    fake = Fake()
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    images: dict[str, list[np.ndarray]] = {"trainval": [], "test": []}
    trimaps: dict[str, list[np.ndarray]] = {"trainval": [], "test": []}
    seed = 0
    for label, breed in enumerate(PET_BREEDS, start=1):
        species = 1 if breed[0].isupper() else 2
        for split, count in (("trainval", 2), ("test", 1)):
            for _ in range(count):
                seed += 1
                h, w = sizes[seed % len(sizes)]
                image_id = f"{breed}_{seed}"
                trimap = pet_trimap(h, w, seed)
                photo, _ = pet_photo(trimap, seed)
                Image.fromarray(photo).save(base / "images" / f"{image_id}.jpg", quality=95)
                Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{image_id}.png")
                lines[split].append(f"{image_id} {label} {species} {label}")
                images[split].append(photo)
                trimaps[split].append(trimap)
    for split in ("trainval", "test"):
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines[split]) + "\n")
        key = "train" if split == "trainval" else "test"
        fake.images[key] = images[split]  # type: ignore[assignment]  (a list: sizes differ)
        fake.targets[key] = trimaps[split]  # type: ignore[assignment]
    for part in ("images", "annotations"):
        _tar_gz(base / f"{part}.tar.gz", base / part, part)
        fake.md5s[f"{part}.tar.gz"] = md5(base / f"{part}.tar.gz")
    return fake
