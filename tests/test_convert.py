"""Converters: folders of images, IDX files and generated data to shards that trainer.data reads."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import make_config
from PIL import Image

from trainer.convert import main, shard_names, shard_sizes
from trainer.data import load_data
from trainer.datasets import DATASETS, FLOWER_CLASSES
from trainer.keras_api import tf
from trainer.records import SCHEMA_FLOWERS_V1, SCHEMA_FLOWERS_V2, SCHEMA_MNIST, write_idx
from trainer.synthetic import write_mnist_idx

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"daisy": (220, 30, 30), "roses": (30, 200, 30), "tulips": (30, 30, 220)}


def eval_records(argv: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """(images, labels, schema) of one pass of trainer.data's evaluation pipeline."""
    cfg = make_config([*argv, "--cache", "none", "--batch-size", "8"])
    data = load_data(cfg, DATASETS[cfg.dataset])
    images, labels = [], []
    for batch_images, batch_labels in data.eval_fn(tf.distribute.InputContext()):
        images.append(batch_images.numpy())
        labels.append(np.argmax(batch_labels.numpy(), -1))
    return np.concatenate(images), np.concatenate(labels), data.schema


def _picture(colour: tuple[int, int, int], width: int, height: int, fmt: str) -> bytes:
    """A colour square in the middle of black bands: only a centre crop keeps no black."""
    image = Image.new("RGB", (width, height), (0, 0, 0))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image.paste(colour, (left, top, left + side, top + side))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """daisy: 3 JPEGs (wide), roses: 2 PNGs (tall), tulips: 4 JPEGs; plus a file to ignore."""
    root = tmp_path / "photos"
    layout = {
        "daisy": (3, ".jpg", 60, 40),
        "roses": (2, ".png", 30, 50),
        "tulips": (4, ".JPG", 50, 50),
    }
    for name, (count, ext, width, height) in layout.items():
        (root / name).mkdir(parents=True)
        fmt = "PNG" if ext == ".png" else "JPEG"
        for i in range(count):
            (root / name / f"{i}{ext}").write_bytes(_picture(COLOURS[name], width, height, fmt))
    (root / "tulips" / "notes.txt").write_text("not an image")
    return root


def test_shard_sizes_and_names_follow_the_public_flowers() -> None:
    sizes = shard_sizes(3670, 230)
    assert sizes == [230] * 15 + [220]
    names = shard_names("flowers", sizes)
    assert (names[0], names[-1]) == ("flowers00-230.tfrec", "flowers15-220.tfrec")


def test_image_folder_crops_resizes_and_labels_by_sorted_folder(
    photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    argv = ["image-folder", str(photo_folder), str(out), "--size", "16", "--per-shard", "4"]
    assert main(argv) == 0
    assert sorted(os.listdir(out)) == [
        "flowers00-4.tfrec",
        "flowers01-4.tfrec",
        "flowers02-1.tfrec",
    ]
    summary = capsys.readouterr().out
    assert "9 records in 3 shard(s)" in summary
    assert [line.split() for line in summary.splitlines()[1:]] == [
        ["daisy", "3"],
        ["roses", "2"],
        ["tulips", "4"],
    ]

    files = f"{out}/flowers*.tfrec"
    images, labels, schema = eval_records(
        [
            "--dataset",
            "flowers",
            "--train-files",
            files,
            "--eval-files",
            files,
            "--image-size",
            "16",
        ]
    )
    assert schema == SCHEMA_FLOWERS_V2
    assert Counter(labels.tolist()) == {0: 3, 1: 2, 2: 4}
    assert images.shape == (9, 16, 16, 3)
    for image, label in zip(images, labels, strict=True):
        colour = COLOURS[("daisy", "roses", "tulips")[label]]
        # Every pixel is the centre colour: the black bands were cropped away.
        assert np.abs(image - np.array(colour)).max() < 40


def test_image_folder_shuffles_with_a_fixed_seed_and_honours_classes(
    photo_folder: Path, tmp_path: Path
) -> None:
    def convert(out: str, *extra: str) -> list[int]:
        assert main(["image-folder", str(photo_folder), out, "--size", "8", *extra]) == 0
        path = f"{out}/flowers00-{9 if not extra else 7}.tfrec"
        records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
        return [r.features.feature["class"].int64_list.value[0] for r in records]

    first, again = convert(str(tmp_path / "a")), convert(str(tmp_path / "b"))
    assert first == again  # same seed, same order
    assert first != sorted(first)  # but not in folder order
    assert (tmp_path / "a" / "flowers00-9.tfrec").read_bytes() == (
        tmp_path / "b" / "flowers00-9.tfrec"
    ).read_bytes()
    # --classes picks folders and their label order; other folders are left out.
    chosen = convert(str(tmp_path / "c"), "--classes", "tulips,daisy")
    assert Counter(chosen) == {0: 4, 1: 3}


@pytest.mark.parametrize("case", ["empty folder", "unreadable image", "unknown class"])
def test_image_folder_bad_input_is_one_line_naming_the_culprit(
    case: str, photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    argv = ["image-folder", str(photo_folder), str(out), "--per-shard", "2", "--size", "8"]
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        argv[1], status, culprit = str(tmp_path / "empty"), 2, str(tmp_path / "empty")
    elif case == "unreadable image":
        bad = photo_folder / "roses" / "9.png"
        bad.write_bytes(b"\x89PNG but not really")
        status, culprit = 1, str(bad)
    else:
        argv += ["--classes", "daisy,orchids"]
        status, culprit = 2, "orchids"
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("trainer.convert: error: ")
    assert culprit in err
    assert not list(out.glob("*.tfrec"))  # nothing half-written is left behind


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_idx_to_shards_keeps_pixels_and_labels(tmp_path: Path, suffix: str) -> None:
    src, out = tmp_path / "idx", tmp_path / "shards"
    src.mkdir()
    written = write_mnist_idx(str(src), 50, 20, seed=3)
    if suffix:
        for path in written:
            data = Path(path).read_bytes()
            os.remove(path)
            Path(path + suffix).write_bytes(gzip.compress(data))
    assert main(["mnist-idx", str(src), str(out), "--per-shard", "30"]) == 0
    assert sorted(os.listdir(out)) == [
        "mnist-eval00-20.tfrec",
        "mnist-train00-30.tfrec",
        "mnist-train01-20.tfrec",
    ]
    idx_images, idx_labels, _ = eval_records(
        ["--train-files", f"{src}/train-*", "--eval-files", f"{src}/t10k-*"]
    )
    tfr_images, tfr_labels, schema = eval_records(
        ["--train-files", f"{out}/mnist-train*", "--eval-files", f"{out}/mnist-eval*"]
    )
    assert schema == SCHEMA_MNIST
    assert tfr_labels.tolist() == idx_labels.tolist()  # one eval file: the same order
    np.testing.assert_array_equal(tfr_images, idx_images)


def test_mnist_idx_bad_magic_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_mnist_idx(str(tmp_path), 10, 5)
    labels = tmp_path / "train-labels-idx1-ubyte"
    write_idx(str(labels), np.zeros(10, np.uint8))
    labels.write_bytes(b"\x00\x00\x09\x99" + labels.read_bytes()[4:])
    assert main(["mnist-idx", str(tmp_path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{labels}: bad IDX magic number" in err


@pytest.mark.parametrize(
    ("dataset", "fmt", "schema"),
    [
        ("flowers", "tfrecord", SCHEMA_FLOWERS_V2),
        ("flowers", "tfrecord-v1", SCHEMA_FLOWERS_V1),
        ("mnist", "tfrecord", SCHEMA_MNIST),
        ("mnist", "idx", "idx"),
    ],
)
def test_synthetic_any_size_in_either_format(
    tmp_path: Path, dataset: str, fmt: str, schema: str
) -> None:
    out = str(tmp_path / dataset)
    argv = ["synthetic", dataset, out, "--format", fmt, "--count", "25", "--per-shard", "10"]
    assert (
        main([*argv, "--eval-count", "15"] if dataset == "mnist" else [*argv, "--size", "24"]) == 0
    )
    if dataset == "flowers":
        flags = ["--dataset", "flowers", "--data-dir", out, "--image-size", "24"]
    else:
        flags = ["--data-dir", out] if fmt == "idx" else []
        if fmt == "tfrecord":
            flags = ["--train-files", f"{out}/mnist-train*", "--eval-files", f"{out}/mnist-eval*"]
    images, labels, got = eval_records(flags)
    assert got == schema
    if dataset == "flowers":  # held out by files: flowers00-10 of 10 + 10 + 5
        assert len(labels) == 10 and images.shape[1:] == (24, 24, 3)
        assert set(labels.tolist()) <= set(range(len(FLOWER_CLASSES)))
    else:
        assert len(labels) == 15 and images.shape[1:] == (28, 28, 1)
        assert sorted(Counter(labels.tolist()).values())[-1] <= 2  # balanced digits


def test_runs_as_a_module_and_help_needs_no_tensorflow(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    check = "import sys, trainer.convert as c; c.build_parser(); print('tensorflow' in sys.modules)"
    fast = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert fast.stdout.strip() == "False"
    out = tmp_path / "digits"
    run = subprocess.run(
        [sys.executable, "-m", "trainer.convert", "synthetic", "mnist", str(out), "--count", "20"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("24 records in 2 shard(s)")
    assert sorted(os.listdir(out)) == ["mnist-eval00-4.tfrec", "mnist-train00-20.tfrec"]
