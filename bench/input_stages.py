"""Where the streaming input's time goes: its stages added one at a time, side by side.

The same 192x192 flowers shards as bench/input_pipeline.py, each variant as a ratio to the
decode limit on a thread pool of its own (trainer.data's with_own_threads, as ours runs):
  records in memory   the serialized records held in memory, parsed and decoded one by one
  one reader          one sequential TFRecordDataset over the shuffled file list
  interleave          the files read by a parallel interleave, as trainer.data reads them,
                      records shuffled as bytes, then decoded one by one (ours until the
                      batch decoder)
  interleave, 2 calls the same with the interleave's parallelism bounded to 2
  batch, any order    records shuffled, batched and decoded a batch per call, batches leaving
                      as they are done
  ours                trainer.data's training input (--cache none): the same, batches leaving
                      in the order drawn
Every round measures every variant in turn; each ratio is the median of per-round ratios.

    nice -n 10 .venv/bin/python bench/input_stages.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from input_pipeline import SIZE, decode_limit, ours, shard_arguments, steady_rate, write_shards

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    return shard_arguments(
        argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ).parse_args()


def variants(files: list[str], jpegs: list[bytes], batch: int) -> dict[str, Callable[[], Any]]:
    """Builders of every variant's batched dataset."""
    from trainer.data import (
        MAX_PARALLEL_FILES,
        READ_BUFFER_BYTES,
        batch_decoder,
        record_decoder,
        with_own_threads,
    )
    from trainer.datasets import DATASETS
    from trainer.keras_api import tf
    from trainer.recipes import DATASET_RECIPES
    from trainer.records import SCHEMA_FLOWERS_V2

    spec, autotune = DATASETS["flowers"], tf.data.AUTOTUNE
    buffer = DATASET_RECIPES["flowers"]["shuffle_buffer"]
    records = [r.numpy() for r in tf.data.TFRecordDataset(files)]

    def file_list() -> Any:
        names = tf.data.Dataset.from_tensor_slices(files)
        return names.shuffle(len(files), reshuffle_each_iteration=True).repeat()

    def interleave(calls: int) -> Any:
        return file_list().interleave(
            lambda path: tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER_BYTES),
            cycle_length=min(len(files), MAX_PARALLEL_FILES),
            num_parallel_calls=calls,
            deterministic=False,
        )

    def one_by_one(ds: Any, shuffle: bool = True) -> Any:
        ds = ds.shuffle(buffer, seed=0) if shuffle else ds
        decode = record_decoder(spec, SCHEMA_FLOWERS_V2, SIZE)
        ds = ds.map(decode, num_parallel_calls=autotune, deterministic=False)
        return with_own_threads(ds.batch(batch, drop_remainder=True).prefetch(autotune))

    def batched(ds: Any) -> Any:
        ds = ds.shuffle(buffer, seed=0).batch(batch, drop_remainder=True)
        decode = batch_decoder(spec, SCHEMA_FLOWERS_V2, SIZE)
        ds = ds.map(decode, num_parallel_calls=autotune, deterministic=False)
        return with_own_threads(ds.prefetch(autotune))

    return {
        "decode limit": lambda: with_own_threads(decode_limit(jpegs, batch)),
        "records in memory": lambda: one_by_one(
            tf.data.Dataset.from_tensor_slices(records).repeat(), shuffle=False
        ),
        "one reader": lambda: one_by_one(
            tf.data.TFRecordDataset(file_list(), buffer_size=READ_BUFFER_BYTES)
        ),
        "interleave": lambda: one_by_one(interleave(autotune)),
        "interleave, 2 calls": lambda: one_by_one(interleave(2)),
        "batch, any order": lambda: batched(interleave(autotune)),
        "ours": lambda: ours(files, batch),
    }


def main() -> None:
    args = parse_args()
    sys.path.insert(0, ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from trainer.recipes import DATASET_RECIPES

    # Variants with a shuffle buffer fill it before their first batch: not timed.
    warmup = DATASET_RECIPES["flowers"]["shuffle_buffer"] + 4 * args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        files, jpegs = write_shards(tmp, args.images, args.shards)
        builders = variants(files, jpegs, args.batch_size)
        rates: dict[str, list[float]] = {name: [] for name in builders}
        for round_ in range(args.rounds):
            for name, build in builders.items():
                rate = steady_rate(build(), args.batch_size, warmup, args.timed).images_per_s
                rates[name].append(rate)
                print(f"round {round_ + 1}: {name:<20} {rate:6.0f} images/s", file=sys.stderr)
    print(
        f"flowers {SIZE}x{SIZE} JPEG: {args.images} images in {args.shards} shards, batch "
        f"{args.batch_size}, median of {args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    limit = rates["decode limit"]
    for name, values in rates.items():
        ratio = statistics.median(a / b for a, b in zip(values, limit, strict=True))
        print(f"  {name:<20} {statistics.median(values):6.0f} images/s  {ratio:.2f} of the limit")


if __name__ == "__main__":
    main()
