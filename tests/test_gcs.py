"""Cloud Storage through TensorFlow's own gs:// client, against fake-gcs-server (no network).

The google-cloud-storage client seeds the buckets; everything the product does (glob, reads
through trainer.data's pipeline, writes, converters) goes through TensorFlow's client and the
fault-injecting proxy of tests/gcs_emulator.py.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import make_config
from gcs_emulator import Faults, GcsEmulator
from PIL import Image

from trainer.convert import main as convert
from trainer.data import load_data
from trainer.datasets import DATASETS
from trainer.keras_api import tf
from trainer.synthetic import write_flower_shards

SIZE = 32  # small images: the point here is the transport, not the pixels


@pytest.fixture(scope="module")
def local_shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Ten shards of four 32x32 synthetic flowers each (flowers00-4.tfrec ... flowers09-4)."""
    folder = tmp_path_factory.mktemp("gcs-shards")
    return write_flower_shards(str(folder), 40, 10, size=SIZE, seed=5)


def upload(emulator: GcsEmulator, bucket: str, paths: list[str], prefix: str) -> list[str]:
    """Seed a bucket with the google-cloud-storage client; returns the gs:// names."""
    blobs = emulator.client().bucket(bucket.removeprefix("gs://"))
    names = []
    for path in paths:
        name = f"{prefix}/{Path(path).name}"
        blobs.blob(name).upload_from_filename(path)
        names.append(f"{bucket}/{name}")
    return names


def flowers_flags(train: str, evaluation: str) -> list[str]:
    return ["--dataset", "flowers", "--train-files", train, "--eval-files", evaluation]


def eval_pass(data: object) -> tuple[Counter[int], list[float]]:
    """Label histogram and sorted per-record pixel sums of one evaluation pass."""
    labels: Counter[int] = Counter()
    sums: list[float] = []
    for images, one_hot in data.eval_fn(tf.distribute.InputContext()):
        labels.update(np.argmax(one_hot.numpy(), -1).tolist())
        sums += images.numpy().sum(axis=(1, 2, 3)).tolist()
    return labels, sorted(sums)


def load(argv: list[str]) -> object:
    sizes = ["--image-size", str(SIZE), "--batch-size", "8", "--shuffle-buffer", "16"]
    cfg = make_config([*argv, *sizes, "--cache", "none"])  # every pass reads the bucket
    return load_data(cfg, DATASETS[cfg.dataset])


def test_glob_and_interleaved_reads_match_the_local_files(
    gcs_emulator: GcsEmulator, gcs_bucket: str, local_shards: list[str]
) -> None:
    remote = upload(gcs_emulator, gcs_bucket, local_shards, "flowers")
    assert tf.io.gfile.glob(f"{gcs_bucket}/flowers/flowers*.tfrec") == sorted(remote)

    local = load(flowers_flags(",".join(local_shards), ",".join(local_shards[:2])))
    data = load(flowers_flags(f"{gcs_bucket}/flowers/flowers*.tfrec", ",".join(remote[:2])))
    assert (data.train_count, data.eval_count) == (local.train_count, local.eval_count) == (40, 8)
    # Evaluation: the same records as the local copy, each once.
    assert eval_pass(data) == eval_pass(local)
    # Training: interleaved, shuffled and batched from every remote shard.
    ctx = tf.distribute.InputContext()
    images, labels = next(iter(data.train_fn(ctx)))
    assert images.shape == (8, SIZE, SIZE, 3) and labels.shape == (8, 5)
    assert gcs_emulator.stats["status_206"] >= 10  # ranged reads of the shards went through


def test_explicit_file_names_need_no_list_permission(
    gcs_emulator: GcsEmulator, gcs_bucket: str, local_shards: list[str]
) -> None:
    remote = upload(gcs_emulator, gcs_bucket, local_shards, "public")
    truth = eval_pass(load(flowers_flags(",".join(local_shards[2:]), ",".join(local_shards[:2]))))
    gcs_emulator.set_faults(Faults(deny_list=True))  # like gs://flowers-public for some users
    data = load(flowers_flags(",".join(remote[2:]), ",".join(remote[:2])))
    assert eval_pass(data) == truth
    assert gcs_emulator.stats["list_denied"] == 0
    # The bucket really refuses listing: a glob fails.
    with pytest.raises(tf.errors.OpError):
        tf.io.gfile.glob(f"{gcs_bucket}/public/*.tfrec")
    assert gcs_emulator.stats["list_denied"] >= 1


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_writes_and_converters_from_and_into_gs(
    gcs_emulator: GcsEmulator, gcs_bucket: str, tmp_path: Path
) -> None:
    records = [f"record {i}".encode() * (i + 1) for i in range(20)]
    with tf.io.TFRecordWriter(f"{gcs_bucket}/raw/a.tfrec") as writer:
        for record in records:
            writer.write(record)
    got = [r.numpy() for r in tf.data.TFRecordDataset(f"{gcs_bucket}/raw/a.tfrec")]
    assert got == records

    # A photo folder in the bucket, laid out like gs://flowers-public/<class>/*.jpg.
    photos = gcs_emulator.client().bucket(gcs_bucket.removeprefix("gs://"))
    colours = {"daisy": (230, 40, 40), "tulips": (40, 40, 230)}
    for name, colour in colours.items():
        for i in range(3):
            photos.blob(f"photos/{name}/{i}.jpg").upload_from_string(_jpeg(colour))
    photos.blob("photos/tfrecords-jpeg-192x192-2/ignored.tfrec").upload_from_string(b"x")
    out = f"{gcs_bucket}/converted"
    argv = ["image-folder", f"{gcs_bucket}/photos", out, "--size", str(SIZE), "--per-shard", "4"]
    assert convert([*argv, "--classes", "daisy,tulips"]) == 0
    assert sorted(tf.io.gfile.listdir(out)) == ["flowers00-4.tfrec", "flowers01-2.tfrec"]
    labels, sums = eval_pass(load(flowers_flags(f"{out}/flowers00-4.tfrec", f"{out}/flowers*")))
    assert labels == {0: 3, 1: 3}
    assert len(sums) == 6

    # MNIST IDX (.gz) from the bucket to shards in the bucket.
    local = tmp_path / "idx"
    local.mkdir()
    from trainer.synthetic import write_mnist_idx

    for path in write_mnist_idx(str(local), 30, 10):
        photos.blob(f"idx/{Path(path).name}").upload_from_filename(path)
    assert convert(["mnist-idx", f"{gcs_bucket}/idx", f"{gcs_bucket}/mnist"]) == 0
    assert sorted(tf.io.gfile.listdir(f"{gcs_bucket}/mnist")) == [
        "mnist-eval00-10.tfrec",
        "mnist-train00-30.tfrec",
    ]


def test_every_evaluation_record_once_per_pass_with_20_percent_of_requests_failing(
    gcs_emulator: GcsEmulator, gcs_bucket: str, local_shards: list[str]
) -> None:
    remote = upload(gcs_emulator, gcs_bucket, local_shards, "flowers")
    truth = eval_pass(load(flowers_flags(local_shards[0], ",".join(local_shards))))
    assert sum(truth[0].values()) == 40
    with gcs_emulator.faulty(fail_rate=0.2):
        data = load(flowers_flags(remote[0], ",".join(remote)))
        for _ in range(2):  # two evaluation passes, as two epochs of fit would do
            assert eval_pass(data) == truth
        # Writes under faults too: uploads whose data was lost must not pass for complete.
        for i in range(5):
            with tf.io.gfile.GFile(f"{gcs_bucket}/out/{i}.bin", "wb") as f:
                f.write(bytes([i]) * 5000)
    for i in range(5):
        with tf.io.gfile.GFile(f"{gcs_bucket}/out/{i}.bin", "rb") as f:
            assert f.read() == bytes([i]) * 5000
    assert gcs_emulator.stats["failed_503"] > 0 and gcs_emulator.stats["dropped"] > 0
