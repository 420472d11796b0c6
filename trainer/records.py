"""File formats: MNIST IDX files, and the TFRecord schemas of MNIST and flowers.

Writing and parsing of each format sit side by side, so a schema is defined in one place.
Flowers come in two public schemas, told apart by the features of the first record:
  tfrecords-jpeg-192x192-2  image, class (int64), label (bytes), size (int64[2]), one_hot_class
  tfrecords-jpeg-192x192    image, label (text), one_hot_label (raw uint8 bytes); no class
"""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.keras_api import tf

IDX_IMAGES_MAGIC = 2051  # unsigned byte data, 3 dimensions
IDX_LABELS_MAGIC = 2049  # unsigned byte data, 1 dimension

SCHEMA_FLOWERS_V2 = "tfrecords-jpeg-192x192-2"
SCHEMA_FLOWERS_V1 = "tfrecords-jpeg-192x192"
SCHEMA_MNIST = "mnist-tfrecord"


class DataError(ValueError):
    """Input data that cannot be used; the message names the file (and record)."""


# ---------------------------------------------------------------------------- IDX


def _open_maybe_gzip(path: str) -> Any:
    handle = tf.io.gfile.GFile(path, "rb")
    return gzip.GzipFile(fileobj=handle) if path.endswith(".gz") else handle


def read_idx_header(path: str) -> tuple[int, tuple[int, ...]]:
    """(magic number, dimensions) of an IDX file, local or gs://, plain or .gz."""
    try:
        with _open_maybe_gzip(path) as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: too short to be an IDX file")
            magic = struct.unpack(">I", head)[0]
            ndim = magic & 0xFF
            if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
                raise DataError(
                    f"{path}: bad IDX magic number {magic} "
                    f"(expected {IDX_IMAGES_MAGIC} for images or {IDX_LABELS_MAGIC} for labels)"
                )
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise DataError(f"{path}: IDX header is truncated")
            return magic, struct.unpack(f">{ndim}I", raw)
    except (OSError, tf.errors.OpError) as err:
        raise DataError(f"{path}: cannot read IDX file ({error_text(err)})") from err


def check_idx_pair(images_path: str, labels_path: str) -> tuple[int, int, int]:
    """(count, rows, cols) of a matching IDX image/label pair, or a DataError naming the file."""
    magic, dims = read_idx_header(images_path)
    if magic != IDX_IMAGES_MAGIC:
        raise DataError(f"{images_path}: holds labels, not images (magic {magic})")
    lmagic, ldims = read_idx_header(labels_path)
    if lmagic != IDX_LABELS_MAGIC:
        raise DataError(f"{labels_path}: holds images, not labels (magic {lmagic})")
    if dims[0] != ldims[0]:
        raise DataError(
            f"{images_path} holds {dims[0]} images but {labels_path} holds {ldims[0]} labels"
        )
    count, rows, cols = dims
    expected = 16 + count * rows * cols
    if not images_path.endswith(".gz"):
        size = tf.io.gfile.stat(images_path).length
        if size != expected:
            raise DataError(
                f"{images_path}: header promises {count} images of {rows}x{cols} "
                f"({expected} bytes) but the file has {size} bytes"
            )
    return count, rows, cols


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (images [N, H, W] or labels [N])."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(gzip.compress(data) if path.endswith(".gz") else data)


def idx_dataset(images_path: str, labels_path: str) -> Any:
    """(uint8 image [H, W, 1], int label) records of an IDX pair, checked first."""
    _, rows, cols = check_idx_pair(images_path, labels_path)
    compression = "GZIP" if images_path.endswith(".gz") else None
    images = tf.data.FixedLengthRecordDataset(
        images_path, rows * cols, header_bytes=16, compression_type=compression
    )
    labels = tf.data.FixedLengthRecordDataset(
        labels_path, 1, header_bytes=8, compression_type=compression
    )

    def decode(image: Any, label: Any) -> tuple[Any, Any]:
        pixels = tf.reshape(tf.io.decode_raw(image, tf.uint8), [rows, cols, 1])
        return pixels, tf.cast(tf.reshape(tf.io.decode_raw(label, tf.uint8), []), tf.int32)

    return tf.data.Dataset.zip((images, labels)).map(decode, num_parallel_calls=tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------- TFRecord


def _bytes(values: Sequence[bytes]) -> Any:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values: Sequence[int]) -> Any:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _floats(values: Sequence[float]) -> Any:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def flowers_example(
    jpeg: bytes, class_id: int, class_names: Sequence[str], size: tuple[int, int]
) -> bytes:
    """A serialized record in the tfrecords-jpeg-192x192-2 schema."""
    one_hot = [1.0 if i == class_id else 0.0 for i in range(len(class_names))]
    features = {
        "image": _bytes([jpeg]),
        "class": _ints([class_id]),
        "label": _bytes([class_names[class_id].encode()]),
        "size": _ints(list(size)),
        "one_hot_class": _floats(one_hot),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def flowers_example_v1(jpeg: bytes, class_id: int, class_names: Sequence[str]) -> bytes:
    """A serialized record in the older tfrecords-jpeg-192x192 schema."""
    one_hot = bytes(1 if i == class_id else 0 for i in range(len(class_names)))
    features = {
        "image": _bytes([jpeg]),
        "label": _bytes([class_names[class_id].encode()]),
        "one_hot_label": _bytes([one_hot]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def mnist_example(pixels: np.ndarray, label: int) -> bytes:
    """A serialized MNIST record: raw uint8 pixels, their shape and an int64 label."""
    features = {
        "image": _bytes([np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()]),
        "size": _ints(list(pixels.shape[:2])),
        "label": _ints([int(label)]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def write_tfrecord(path: str, records: Sequence[bytes]) -> None:
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


def detect_schema(path: str) -> str:
    """The schema of a TFRecord file, read from its first record's features."""
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except (tf.errors.OpError, OSError) as err:
        raise DataError(f"{path}: cannot read TFRecords ({error_text(err)})") from err
    if first is None:
        raise DataError(f"{path}: holds no records")
    try:
        features = tf.train.Example.FromString(first.numpy()).features.feature
    except Exception as err:  # protobuf's DecodeError has no stable import path
        raise DataError(f"{path}: record 0 is not a tf.train.Example ({err})") from err
    names = set(features.keys())
    if {"image", "class"} <= names:
        return SCHEMA_FLOWERS_V2
    if {"image", "one_hot_label"} <= names:
        return SCHEMA_FLOWERS_V1
    if {"image", "label"} <= names and features["label"].WhichOneof("kind") == "int64_list":
        return SCHEMA_MNIST
    raise DataError(
        f"{path}: record 0 has features {sorted(names)}; expected image+class "
        f"({SCHEMA_FLOWERS_V2}), image+one_hot_label ({SCHEMA_FLOWERS_V1}) "
        "or image+label (MNIST)"
    )


def record_parser(schema: str, num_classes: int) -> Any:
    """A function from a serialized record to (encoded or raw image bytes, int32 label)."""
    if schema == SCHEMA_FLOWERS_V2:
        spec = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "class": tf.io.FixedLenFeature([], tf.int64),
        }

        def parse(record: Any) -> tuple[Any, Any]:
            ex = tf.io.parse_single_example(record, spec)
            return ex["image"], tf.cast(ex["class"], tf.int32)

    elif schema == SCHEMA_FLOWERS_V1:
        spec = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "one_hot_label": tf.io.FixedLenFeature([], tf.string),
        }

        def parse(record: Any) -> tuple[Any, Any]:
            ex = tf.io.parse_single_example(record, spec)
            one_hot = tf.io.decode_raw(ex["one_hot_label"], tf.uint8)
            one_hot = tf.ensure_shape(one_hot, [num_classes])
            return ex["image"], tf.cast(tf.argmax(one_hot), tf.int32)

    elif schema == SCHEMA_MNIST:
        spec = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        }

        def parse(record: Any) -> tuple[Any, Any]:
            ex = tf.io.parse_single_example(record, spec)
            return ex["image"], tf.cast(ex["label"], tf.int32)

    else:
        raise ValueError(f"unknown schema {schema}")
    return parse


_COUNT_IN_NAME = re.compile(r"-(\d+)\.tfrec(?:ord)?$")


def count_records(paths: Sequence[str]) -> int:
    """Records in TFRecord files: from names like flowers00-230.tfrec, else by reading."""
    counts = [_COUNT_IN_NAME.search(p) for p in paths]
    if all(counts):
        return sum(int(m.group(1)) for m in counts if m)
    try:
        return int(
            tf.data.TFRecordDataset(list(paths), num_parallel_reads=8)
            .reduce(np.int64(0), lambda n, _: n + 1)
            .numpy()
        )
    except tf.errors.OpError as err:
        raise DataError(f"cannot count records in {', '.join(paths)}: {error_text(err)}") from err


_TF_NOISE = (
    re.compile(r"\{\{function_node [^}]*\}\}\s*"),  # the graph function that raised
    re.compile(
        r"Error in user-defined function passed to \w+:\d+ transformation with "
        r"iterator: [\w:]+: "
    ),
    re.compile(r"\s*\[Op:\w+\].*$"),  # the op name and what follows it
)


def error_text(err: BaseException) -> str:
    """The first line of a TensorFlow error, without its graph and op decorations."""
    text = (getattr(err, "message", None) or str(err)).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(err).__name__)
    for noise in _TF_NOISE:
        line = noise.sub("", line)
    if line.startswith("assertion failed: "):
        line = line.removeprefix("assertion failed: ").replace("[", "").replace("]", "")
    return line.strip() or type(err).__name__
