"""Input pipeline throughput on flowers shards, measured side by side in one run.

Three ways to turn the same 192x192 JPEG shards into batches, images/s each:
  decode limit  the same JPEGs held in memory and decoded in parallel: no I/O, no parsing
  codelab       TFRecordDataset(files, num_parallel_reads=AUTOTUNE) + parallel map decode
  ours          the training input of trainer.data (train_fn), with --cache none so that
                every epoch reads the files again (the file list repeats ahead of the
                interleave; records are shuffled as JPEG bytes, then decoded); --augment=false,
                as the other two do not augment (a line with the recipe's augmentation
                follows, for its cost)
first from local files (ratios to the decode limit), then through the emulated Cloud Storage
bucket of tests/gcs_emulator.py, as it is and with latency added to every request (ratios to
the same pipeline's local rate). Next to each rate, the CPU time per image of the bench's
process (all its threads) and, through the bucket, of the bucket's own processes; from them,
the rate that the cores alone allow ours from gs://, as a fraction of its local rate: on
this machine the bucket's work runs on the pipeline's cores. Last, the CPU time that
reading the shards from gs:// (no decoding) costs a fresh process per epoch, with
TensorFlow's default 64 MB read blocks and with the 4 MB the trainer sets
(trainer/keras_api.py): the reader zeroes one block per file opened, which was most of what
gs:// cost before; next to them, the CPU time the emulated bucket itself (fake-gcs-server
and its TLS proxy) spent serving those reads, on the same cores as the pipeline here, where
a real bucket's work runs on Google's machines. Rates are steady-state: the first batches
of each pass (start-up, our shuffle buffer filling) are not timed. Every round measures
every variant in turn, and each figure is the median over rounds.

    nice -n 10 .venv/bin/python bench/input_pipeline.py
    nice -n 10 .venv/bin/python bench/input_pipeline.py --images 4096 --rounds 5 --latency-ms 50
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZE = 192


def shard_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The shards, batch and rounds flags that bench/input_stages.py shares."""
    p.add_argument("--images", type=int, default=2048, help="images in the shards (2048)")
    p.add_argument("--shards", type=int, default=16, help="shards, as the public flowers (16)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (64)")
    p.add_argument("--timed", type=int, default=4096, help="images timed per measurement")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all variants (3)")
    return p


def parse_args() -> argparse.Namespace:
    p = shard_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    p.add_argument("--latency-ms", type=float, default=50.0, help="added per request (50)")
    p.add_argument("--skip-gcs", action="store_true", help="local files only")
    return p.parse_args()


# ---------------------------------------------------------------------------- the pipelines


def decode_limit(jpegs: list[bytes], batch: int) -> Any:
    """The JPEGs from memory, decoded exactly as our pipeline decodes them."""
    from trainer.images import decode_to_square
    from trainer.keras_api import tf

    ds = tf.data.Dataset.from_tensor_slices(jpegs).repeat()
    ds = ds.map(lambda b: decode_to_square(b, SIZE), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def codelab(files: list[str], batch: int) -> Any:
    """The flowers codelab's load_dataset, without its in-memory cache."""
    from trainer.keras_api import tf

    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "class": tf.io.FixedLenFeature([], tf.int64),
    }

    def read_tfrecord(example: Any) -> tuple[Any, Any]:
        example = tf.io.parse_single_example(example, features)
        image = tf.image.decode_jpeg(example["image"], channels=3)
        image = tf.cast(image, tf.float32) / 255.0
        return tf.reshape(image, [SIZE, SIZE, 3]), example["class"]

    options = tf.data.Options()
    options.deterministic = False
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.with_options(options).map(read_tfrecord, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def ours(files: list[str], batch: int, augment: bool = False) -> Any:
    """trainer.data's training input, as a run with these flags builds it."""
    from trainer.config import build_config
    from trainer.data import load_data
    from trainer.datasets import DATASETS
    from trainer.flags import parse_flags
    from trainer.keras_api import tf

    flags = ["--dataset", "flowers", "--train-files", ",".join(files), "--eval-files", files[0]]
    flags += ["--batch-size", str(batch), "--cache", "none", "--image-size", str(SIZE)]
    flags += [f"--augment={str(augment).lower()}"]
    cfg = build_config(parse_flags(flags), {})
    return load_data(cfg, DATASETS["flowers"]).train_fn(tf.distribute.InputContext())


@dataclasses.dataclass
class Rate:
    """One measurement: images/s, and the CPU time per image of this process (all its
    threads) and of the emulated bucket (its two processes), both ms over the timed stretch."""

    images_per_s: float
    cpu_ms: float
    bucket_cpu_ms: float


def steady_rate(
    ds: Any, batch: int, warmup_images: int, timed_images: int, emulator: Any = None
) -> Rate:
    """Steady-state Rate: warmup_images pulled untimed, then timed_images timed."""
    it = iter(ds)
    for _ in range(-(-warmup_images // batch)):
        next(it)
    batches = max(1, timed_images // batch)
    bucket = emulator.cpu_seconds() if emulator is not None else 0.0
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    bucket = emulator.cpu_seconds() - bucket if emulator is not None else 0.0
    images = batches * batch
    return Rate(images / seconds, 1000 * cpu / images, 1000 * bucket / images)


# ---------------------------------------------------------------------------- the run


def write_shards(folder: str, count: int, shards: int) -> tuple[list[str], list[bytes]]:
    from trainer.keras_api import tf
    from trainer.synthetic import write_flower_shards

    files = write_flower_shards(folder, count, shards, size=SIZE, seed=0)
    jpegs = []
    for record in tf.data.TFRecordDataset(files):
        example = tf.train.Example.FromString(record.numpy())
        jpegs.append(example.features.feature["image"].bytes_list.value[0])
    return files, jpegs


Variant = tuple[Callable[[], Any], int, float | None]  # build, warm-up images, latency


def measure(
    variants: dict[str, Variant], args: argparse.Namespace, emulator: Any
) -> dict[str, list[Rate]]:
    """A Rate of every variant in every round; variants take turns within a round."""
    rates: dict[str, list[Rate]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        for name, (build, warmup, latency_s) in variants.items():
            remote = latency_s is not None
            if remote:
                emulator.set_faults(emulator_faults(latency_s))
            rate = steady_rate(
                build(), args.batch_size, warmup, args.timed, emulator if remote else None
            )
            rates[name].append(rate)
            print(
                f"round {round_ + 1}: {name:<22} {rate.images_per_s:6.0f} images/s, "
                f"{rate.cpu_ms:.3f} + {rate.bucket_cpu_ms:.3f} CPU ms per image",
                file=sys.stderr,
            )
    return rates


def emulator_faults(latency_s: float) -> Any:
    from gcs_emulator import Faults

    return Faults(latency_s=latency_s)


def start_emulator(folder: Path) -> Any:
    """tests/gcs_emulator.py's fake-gcs-server behind its TLS proxy, env set for TensorFlow."""
    sys.path.insert(0, str(ROOT / "tests"))
    from gcs_emulator import GcsEmulator

    emulator = GcsEmulator(folder)
    emulator.start()
    os.environ.update(emulator.env)  # before TensorFlow loads (its gs:// retry settings)
    return emulator


def upload(emulator: Any, files: list[str]) -> list[str]:
    bucket = emulator.client().create_bucket("bench")
    for path in files:
        bucket.blob(f"flowers/{Path(path).name}").upload_from_filename(path)
    return [f"gs://bench/flowers/{Path(p).name}" for p in files]


READ_ONLY = """
import sys, time
from trainer.keras_api import tf
files, epochs = sys.argv[1].split(","), int(sys.argv[2])
ds = tf.data.Dataset.from_tensor_slices(files).interleave(
    lambda p: tf.data.TFRecordDataset(p, buffer_size=8 << 20), cycle_length=16,
    num_parallel_calls=4)
ds.reduce(0, lambda n, _: n + 1)  # the first pass opens the client; not timed
started = time.process_time()
for _ in range(epochs):
    ds.reduce(0, lambda n, _: n + 1)
print((time.process_time() - started) / epochs)
"""


def read_cpu_per_epoch(remote: list[str], block_mb: int, epochs: int = 4) -> float:
    """CPU seconds a fresh process spends reading every shard from gs:// once (no decode),
    with TensorFlow's gs:// read block set to block_mb."""
    env = dict(os.environ, GCS_READ_CACHE_BLOCK_SIZE_MB=str(block_mb), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", READ_ONLY, ",".join(remote), str(epochs)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    with tempfile.TemporaryDirectory() as tmp:
        emulator = None if args.skip_gcs else start_emulator(Path(tmp))
        try:
            report(args, Path(tmp), emulator)
        finally:
            if emulator is not None:
                emulator.stop()


def report(args: argparse.Namespace, tmp: Path, emulator: Any) -> None:
    from trainer.recipes import DATASET_RECIPES

    (tmp / "shards").mkdir()
    files, jpegs = write_shards(str(tmp / "shards"), args.images, args.shards)
    size_mb = sum(os.path.getsize(f) for f in files) / 2**20
    batch = args.batch_size
    # Ours fills its shuffle buffer before the first batch; that start-up is not timed.
    ours_warmup = DATASET_RECIPES["flowers"]["shuffle_buffer"] + 4 * batch
    variants: dict[str, Variant] = {
        "decode limit": (lambda: decode_limit(jpegs, batch), 4 * batch, None),
        "codelab": (lambda: codelab(files, batch), 4 * batch, None),
        "ours": (lambda: ours(files, batch), ours_warmup, None),
        "ours + augment": (lambda: ours(files, batch, augment=True), ours_warmup, None),
    }
    remote: list[str] = []
    if emulator is not None:
        remote = upload(emulator, files)
        latency = args.latency_ms / 1000
        for name, pipeline, warmup in (
            ("codelab", codelab, 4 * batch),
            ("ours", ours, ours_warmup),
        ):
            for extra in (0.0, latency):
                build = lambda p=pipeline: p(remote, batch)  # noqa: E731
                variants[f"{name} gs:// +{extra * 1000:.0f} ms"] = (build, warmup, extra)
    print(
        f"flowers {SIZE}x{SIZE} JPEG: {args.images} images in {args.shards} shards "
        f"({size_mb:.1f} MB), batch {batch}, {args.timed} images timed per measurement, "
        f"median of {args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    rounds = measure(variants, args, emulator)

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in rounds[name])

    def ratio(name: str, base: str) -> float:
        """Median over rounds of name/base, both measured in the same round."""
        pairs = zip(rounds[name], rounds[base], strict=True)
        return statistics.median(a.images_per_s / b.images_per_s for a, b in pairs)

    print("local files                      images/s  (median of per-round ratios)  CPU ms/image")
    print(
        f"  {'decode limit (JPEGs in memory)':<30} {median('decode limit', 'images_per_s'):6.0f}"
        f"{'':29}{median('decode limit', 'cpu_ms'):6.3f}"
    )
    for name in ("codelab", "ours", "ours + augment"):
        print(
            f"  {name:<30} {median(name, 'images_per_s'):6.0f}    "
            f"{ratio(name, 'decode limit'):.2f} of decode limit{'':8}{median(name, 'cpu_ms'):6.3f}"
        )
    if emulator is None:
        return
    print(
        f"emulated gs:// bucket ({emulator.stats['requests']} requests){'':29}"
        "CPU ms/image: ours + the bucket's"
    )
    latency = f"+{args.latency_ms:.0f} ms"
    for name in ("codelab", "ours"):
        for extra in ("+0 ms", latency):
            label = f"{name} gs:// {extra}"
            print(
                f"  {label:<30} {median(label, 'images_per_s'):6.0f}    "
                f"{ratio(label, name):.2f} of local{'':17}{median(label, 'cpu_ms'):6.3f} + "
                f"{median(label, 'bucket_cpu_ms'):.3f}"
            )
        cost = ratio(f"{name} gs:// {latency}", f"{name} gs:// +0 ms")
        print(f"  {'':<30} {'':6}    {cost:.2f}: {latency} against +0 ms")
    print_cpu_bound(rounds, f"ours gs:// {latency}")
    print_read_cpu(remote, emulator)


def print_cpu_bound(rounds: dict[str, list[Rate]], remote: str) -> None:
    """How far the cores alone let ours from gs:// go: a bucket on loopback runs on the same
    cores as the pipeline, where a real one runs on Google's machines. At r images/s with c
    CPU ms per image (ours and the bucket's), the cores are busy r * c / 1000 of the time,
    so r is at most cores * 1000 / c; here as a fraction of ours' local rate in that round."""
    cores = os.cpu_count() or 1

    def busy(rate: Rate) -> float:
        return rate.images_per_s * (rate.cpu_ms + rate.bucket_cpu_ms) / 1000

    bounds = [
        cores * 1000 / (gs.cpu_ms + gs.bucket_cpu_ms) / local.images_per_s
        for local, gs in zip(rounds["ours"], rounds[remote], strict=True)
    ]
    print(
        f"cores busy: ours {statistics.median(map(busy, rounds['ours'])):.2f} of {cores} "
        f"locally, {statistics.median(map(busy, rounds[remote])):.2f} with the bucket "
        f"({remote}); at the CPU per image measured, the cores allow ours at most "
        f"{statistics.median(bounds):.2f} of its local rate"
    )


def print_read_cpu(remote: list[str], emulator: Any) -> None:
    from trainer.keras_api import GCS_BLOCK_ENV

    default_mb, ours_mb = 64, int(os.environ[GCS_BLOCK_ENV])
    epochs = 4
    server_before = emulator.cpu_seconds()
    default_cpu, ours_cpu = (read_cpu_per_epoch(remote, mb, epochs) for mb in (default_mb, ours_mb))
    # Each reading process also reads the shards once untimed, as it starts.
    server = (emulator.cpu_seconds() - server_before) / (2 * (epochs + 1))
    print(
        f"CPU s per epoch to read the {len(remote)} shards from gs:// (no decode): "
        f"{default_cpu:.2f} with TensorFlow's default {default_mb} MB read blocks, "
        f"{ours_cpu:.2f} with ours of {ours_mb} MB ({ours_cpu / default_cpu:.2f}); "
        f"the emulated bucket's own CPU s per epoch, on the same cores: {server:.2f}"
    )


if __name__ == "__main__":
    main()
