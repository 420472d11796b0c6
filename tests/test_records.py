"""File formats: IDX and TFRecord parsing on generated files with known labels."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from PIL import Image

from trainer.datasets import FLOWER_CLASSES
from trainer.keras_api import tf
from trainer.records import (
    SCHEMA_FLOWERS_V1,
    SCHEMA_FLOWERS_V2,
    SCHEMA_MNIST,
    DataError,
    check_idx_pair,
    detect_schema,
    flowers_example,
    flowers_example_v1,
    idx_dataset,
    mnist_example,
    record_parser,
    write_idx,
    write_tfrecord,
)


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip_keeps_pixels_and_labels(tmp_path, suffix: str) -> None:
    images, labels = _pixels(7), np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    ipath, lpath = str(tmp_path / f"i-idx3-ubyte{suffix}"), str(tmp_path / f"l-idx1-ubyte{suffix}")
    write_idx(ipath, images)
    write_idx(lpath, labels)
    assert check_idx_pair(ipath, lpath) == (7, 28, 28)
    got = list(idx_dataset(ipath, lpath).as_numpy_iterator())
    assert [int(label) for _, label in got] == labels.tolist()
    np.testing.assert_array_equal(np.stack([im[..., 0] for im, _ in got]), images)


def test_idx_bad_magic_and_mismatched_counts_name_the_file(tmp_path) -> None:
    ipath, lpath = str(tmp_path / "i"), str(tmp_path / "l")
    write_idx(ipath, _pixels(4))
    write_idx(lpath, np.arange(3, dtype=np.uint8))
    with pytest.raises(DataError, match=r"holds 4 images but .*l holds 3 labels"):
        check_idx_pair(ipath, lpath)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x09\x99" + bytes(100))
    with pytest.raises(DataError, match=r"bad\b.*bad IDX magic number 2457"):
        check_idx_pair(str(tmp_path / "bad"), lpath)
    with open(ipath, "r+b") as f:
        f.truncate(16 + 784 * 2)
    write_idx(lpath, np.arange(4, dtype=np.uint8))
    with pytest.raises(DataError, match="header promises 4 images"):
        check_idx_pair(ipath, lpath)
    assert gzip  # plain and gzip share the header reader (tested above)


def _jpeg(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_both_flowers_schemas_detected_and_parsed_to_the_same_labels(tmp_path) -> None:
    labels = [0, 4, 2, 3, 1]
    v2 = [
        flowers_example(_jpeg((i * 40, 0, 0)), c, FLOWER_CLASSES, (16, 16))
        for i, c in enumerate(labels)
    ]
    v1 = [
        flowers_example_v1(_jpeg((i * 40, 0, 0)), c, FLOWER_CLASSES) for i, c in enumerate(labels)
    ]
    for name, records, schema in (
        ("v2.tfrec", v2, SCHEMA_FLOWERS_V2),
        ("v1.tfrec", v1, SCHEMA_FLOWERS_V1),
    ):
        path = str(tmp_path / name)
        write_tfrecord(path, records)
        assert detect_schema(path) == schema
        parse = record_parser(schema, len(FLOWER_CLASSES))
        got = [int(parse(r)[1]) for r in tf.data.TFRecordDataset(path)]
        assert got == labels


def test_mnist_tfrecords_and_unknown_schema(tmp_path) -> None:
    pixels = _pixels(2)
    path = str(tmp_path / "m.tfrec")
    write_tfrecord(path, [mnist_example(pixels[0], 7), mnist_example(pixels[1], 2)])
    assert detect_schema(path) == SCHEMA_MNIST
    parse = record_parser(SCHEMA_MNIST, 10)
    raw, label = parse(next(iter(tf.data.TFRecordDataset(path))))
    assert int(label) == 7
    assert np.frombuffer(raw.numpy(), np.uint8).reshape(28, 28).tolist() == pixels[0].tolist()
    other = tf.train.Example()
    other.features.feature["pixels"].float_list.value.append(1.0)
    write_tfrecord(str(tmp_path / "x.tfrec"), [other.SerializeToString()])
    with pytest.raises(DataError, match=r"x\.tfrec: record 0 has features \['pixels'\]"):
        detect_schema(str(tmp_path / "x.tfrec"))
