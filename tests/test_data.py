"""Input pipelines: file selection, sharding per input pipeline, one-pass evaluation, caching."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tests.conftest import make_config
from trainer.data import load_data
from trainer.datasets import DATASETS
from trainer.files import MissingFilesError, select_files, split_by_files
from trainer.keras_api import tf
from trainer.synthetic import write_flower_shards


def _labels(ds, limit: int | None = None) -> list[int]:
    ds = ds.unbatch() if limit is None else ds.unbatch().take(limit)
    return [int(np.argmax(label)) for _, label in ds.as_numpy_iterator()]


def _truth(paths) -> collections.Counter:
    from trainer.records import SCHEMA_FLOWERS_V2, detect_schema, record_parser

    parse = record_parser(detect_schema(paths[0]), 5)
    assert detect_schema(paths[0]) == SCHEMA_FLOWERS_V2
    return collections.Counter(int(parse(r)[1]) for r in tf.data.TFRecordDataset(list(paths)))


def test_split_by_files_holds_out_the_first_files() -> None:
    paths = [f"f{i:02d}.tfrec" for i in range(16)]
    train, evaluation = split_by_files(paths, 0.19)
    assert evaluation == ("f00.tfrec", "f01.tfrec", "f02.tfrec")  # int(16 * 0.19) = 3
    assert len(train) == 13
    with pytest.raises(MissingFilesError, match="need at least 2 files"):
        split_by_files(paths[:1], 0.19)


def test_explicit_files_are_opened_not_listed(flowers_dir: str) -> None:
    names = [f"{flowers_dir}/flowers0{i}-20.tfrec" for i in range(5)]
    files = select_files(DATASETS["flowers"], None, names[1:], names[:1], 0.19)
    assert (files.kind, files.train, files.eval) == ("tfrecord", tuple(names[1:]), (names[0],))


def test_evaluation_reads_every_record_once_in_order(flowers_dir: str) -> None:
    cfg = make_config(["--dataset", "flowers", "--data-dir", flowers_dir, "--image-size", "64"])
    data = load_data(cfg, DATASETS["flowers"])
    assert (data.train_count, data.eval_count) == (80, 20)
    first = _labels(data.eval_fn(tf.distribute.InputContext()))
    second = _labels(data.eval_fn(tf.distribute.InputContext()))
    assert first == second and len(first) == 20
    assert collections.Counter(first) == _truth(data.files.eval)


@pytest.mark.parametrize("shards", [5, 2], ids=["by-files", "by-records"])
def test_each_input_pipeline_reads_its_own_share(tmp_path, shards: int) -> None:
    paths = write_flower_shards(str(tmp_path), 40, shards, size=32, seed=4)
    cfg = make_config(
        ["--dataset", "flowers", "--train-files", ",".join(paths), "--eval-files", paths[0]]
        + ["--image-size", "32", "--batch-size", "4", "--cache", "none"]
    )
    data = load_data(cfg, DATASETS["flowers"])
    shares = []
    for index in range(2):
        ctx = tf.distribute.InputContext(2, index, num_replicas_in_sync=2)
        # Evaluation is one pass, so it shows exactly which records each pipeline owns.
        shares.append(collections.Counter(_labels(data.eval_fn(ctx))))
    assert sum(shares, collections.Counter()) == _truth([paths[0]])
    if shards == 5:
        batch = next(iter(data.train_fn(ctx)))[0]
        assert batch.shape == (2, 32, 32, 3)  # global batch 4 over 2 pipelines


def test_training_repeats_shuffles_and_caches_to_a_file(flowers_dir: str, tmp_path) -> None:
    cache = tmp_path / "cache" / "imgs"
    cache.parent.mkdir()
    cfg = make_config(
        ["--dataset", "flowers", "--data-dir", flowers_dir, "--image-size", "64"]
        + ["--batch-size", "16", "--cache", str(cache), "--shuffle-buffer", "1"]
    )
    data = load_data(cfg, DATASETS["flowers"])
    ds = data.train_fn(tf.distribute.InputContext())
    labels = _labels(ds, limit=160)  # two epochs of 80, unmixed with a buffer of 1
    assert len(labels) == 160
    assert collections.Counter(labels) == collections.Counter(
        {k: 2 * v for k, v in _truth(data.files.train).items()}
    )
    assert list(cache.parent.iterdir())  # the cache files exist
    images, _ = next(iter(ds))
    assert images.dtype == tf.float32 and images.shape == (16, 64, 64, 3)  # augmented


def _record_ids(ds, batches: int) -> list[list[int]]:
    """Per batch, each record's identity: the sum of its pixels and its label."""
    out = []
    for images, labels in ds.take(batches).as_numpy_iterator():
        sums = images.reshape(len(images), -1).astype(np.int64).sum(axis=1)
        out.append([int(s) * 10 + int(np.argmax(y)) for s, y in zip(sums, labels, strict=True)])
    return out


def test_in_memory_training_is_a_new_permutation_every_epoch(mnist_dir: str) -> None:
    cfg = make_config(["--data-dir", mnist_dir, "--batch-size", "32", "--augment=false"])
    data = load_data(cfg, DATASETS["mnist"])  # 320 records: cached in memory (auto)
    ds = data.train_fn(tf.distribute.InputContext())
    images, labels = next(iter(ds))
    assert images.dtype == tf.uint8  # the model casts; the pipeline moves a quarter of floats
    assert labels.shape == (32, 10) and labels.dtype == tf.float32  # one-hot, held as such
    epochs = _record_ids(ds, 20)
    first = [r for batch in epochs[:10] for r in batch]
    second = [r for batch in epochs[10:] for r in batch]
    assert len(set(first)) == len(first) == 320  # every record exactly once per epoch
    assert sorted(first) == sorted(second) and first != second  # reshuffled
    again = [
        r for batch in _record_ids(data.train_fn(tf.distribute.InputContext()), 10) for r in batch
    ]
    assert again == first  # the seed makes the order reproducible


def test_in_memory_training_refuses_a_share_smaller_than_a_batch(mnist_dir: str) -> None:
    cfg = make_config(["--data-dir", mnist_dir, "--batch-size", "64"])
    data = load_data(cfg, DATASETS["mnist"])
    # 320 records over 8 pipelines by records: 40 each, under a per-replica batch of 64.
    ctx = tf.distribute.InputContext(8, 0, num_replicas_in_sync=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="fewer training records"):
        next(iter(data.train_fn(ctx)))


def test_streaming_training_reads_every_record_once_per_epoch(flowers_dir: str) -> None:
    cfg = make_config(
        ["--dataset", "flowers", "--data-dir", flowers_dir, "--image-size", "64"]
        + ["--batch-size", "16", "--cache", "none", "--shuffle-buffer", "1", "--augment=false"]
    )
    data = load_data(cfg, DATASETS["flowers"])
    ds = data.train_fn(tf.distribute.InputContext())
    ids = [r for batch in _record_ids(ds, 15) for r in batch]  # three epochs of 80
    counts = collections.Counter(ids)
    # Epochs meet without a pause, so a record of the next may come just before the end of
    # this one; over three epochs every record still shows up three times, give or take one.
    assert len(counts) == 80 and min(counts.values()) >= 2 and max(counts.values()) <= 4
    assert ids[:80] != ids[80:160]  # the file order changes between epochs
    # Both inputs run on a thread pool of their own, not the training step's.
    for made in (ds, data.eval_fn(tf.distribute.InputContext())):
        assert made.options().threading.private_threadpool_size >= 16
    assert next(iter(ds))[0].dtype == tf.uint8


@pytest.mark.parametrize("schema", ["tfrecords-jpeg-192x192-2", "tfrecords-jpeg-192x192", "mnist"])
def test_streaming_batches_decode_the_records_one_by_one_would(tmp_path, schema: str) -> None:
    # Streaming decodes a batch of records per call; with --skip-bad-records it decodes them
    # one by one (so that a bad one goes alone). Both must give the same images and labels.
    if schema == "mnist":
        from trainer.records import mnist_example, write_tfrecord

        rng = np.random.default_rng(3)
        paths = [str(tmp_path / f"mnist-{i}.tfrec") for i in range(3)]
        for i, path in enumerate(paths):
            pixels = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)
            write_tfrecord(path, [mnist_example(p, (i + j) % 10) for j, p in enumerate(pixels)])
        flags = ["--dataset", "mnist"]
    else:
        paths = write_flower_shards(str(tmp_path), 24, 3, size=40, seed=6, schema=schema)
        flags = ["--dataset", "flowers", "--image-size", "32"]  # resized as they decode
    flags += ["--train-files", ",".join(paths), "--eval-files", paths[0], "--cache", "none"]
    flags += ["--batch-size", "8", "--shuffle-buffer", "1", "--augment=false"]
    batched, one_by_one = (
        load_data(make_config(flags + extra), DATASETS[flags[1]]).train_fn(
            tf.distribute.InputContext()
        )
        for extra in ([], ["--skip-bad-records"])
    )
    assert batched.element_spec == one_by_one.element_spec
    ids = [set(r for batch in _record_ids(ds, 9) for r in batch) for ds in (batched, one_by_one)]
    assert ids[0] == ids[1] and len(ids[0]) == 24  # three epochs: every record, alike


def test_older_schema_and_larger_images_load_resized(tmp_path) -> None:
    paths = write_flower_shards(
        str(tmp_path), 12, 3, size=96, seed=5, schema="tfrecords-jpeg-192x192"
    )
    cfg = make_config(
        ["--dataset", "flowers", "--train-files", ",".join(paths[1:]), "--eval-files", paths[0]]
        + ["--image-size", "48"]
    )
    data = load_data(cfg, DATASETS["flowers"])
    assert data.schema == "tfrecords-jpeg-192x192"
    images, labels = next(iter(data.eval_fn(tf.distribute.InputContext())))
    assert images.shape[1:] == (48, 48, 3)
    v2 = write_flower_shards(str(tmp_path / "v2"), 12, 3, size=96, seed=5)
    cfg2 = make_config(
        ["--dataset", "flowers", "--train-files", ",".join(v2[1:]), "--eval-files", v2[0]]
        + ["--image-size", "48"]
    )
    images2, labels2 = next(
        iter(load_data(cfg2, DATASETS["flowers"]).eval_fn(tf.distribute.InputContext()))
    )
    np.testing.assert_array_equal(labels.numpy(), labels2.numpy())  # same labels either way
    np.testing.assert_allclose(images.numpy(), images2.numpy())


def test_mnist_from_idx_and_from_tfrecord_shards_agree(mnist_dir: str, tmp_path) -> None:
    from trainer.records import mnist_example, write_tfrecord

    idx_cfg = make_config(["--data-dir", mnist_dir])
    idx = load_data(idx_cfg, DATASETS["mnist"])
    assert (idx.files.kind, idx.train_count, idx.eval_count) == ("idx", 320, 96)
    images, labels = next(iter(idx.eval_fn(tf.distribute.InputContext())))
    pixels = images.numpy()[..., 0].astype(np.uint8)
    digits = np.argmax(labels.numpy(), -1)
    path = str(tmp_path / "mnist-64.tfrec")
    write_tfrecord(path, [mnist_example(p, d) for p, d in zip(pixels, digits, strict=True)])
    rec_cfg = make_config(["--train-files", path, "--eval-files", path])
    rec = load_data(rec_cfg, DATASETS["mnist"])
    images2, labels2 = next(iter(rec.eval_fn(tf.distribute.InputContext())))
    np.testing.assert_array_equal(images2.numpy(), images.numpy())
    np.testing.assert_array_equal(labels2.numpy(), labels.numpy())
