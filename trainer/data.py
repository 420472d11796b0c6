"""Input pipelines: records from local or gs:// files to batches, per input pipeline.

Each dataset is built by a function of a `tf.distribute.InputContext`, so that
`strategy.distribute_datasets_from_function` gives every worker its own files.
Images stay uint8 up to the model, which casts them itself (a quarter of the memory and of the
host-to-accelerator traffic of floats); only augmentation, which needs floats, casts them
earlier. Augmentation comes after any cache, so it changes every epoch.

Three shapes of training input:
  in memory   when the decoded share fits (--cache auto or memory): the whole share is read
              once into one tensor, and every epoch is a full random permutation of it,
              gathered in one op and sliced into batches (labels one-hot already: no
              per-record work after the first epoch, no per-batch work unless augmenting,
              and a better shuffle than any buffer)
  streaming   otherwise (--cache none, or auto when the share does not fit): the file
              list, reshuffled every epoch, repeats before the interleave, so the next
              epoch's files open while this epoch's are still being read; records are
              shuffled (--shuffle-buffer) before they are decoded, then batched, and each
              batch is decoded in one call (batch_decoder)
  cache file  --cache PATH: decoded images written to PATH in the first epoch and read
              back from it, shuffled with --shuffle-buffer
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trainer.augment import augment_batch
from trainer.config import Config
from trainer.datasets import DatasetSpec
from trainer.files import FileSplit, select_files
from trainer.images import decode_to_square
from trainer.keras_api import tf
from trainer.records import (
    SCHEMA_MNIST,
    DataError,
    check_idx_pair,
    count_records,
    detect_schema,
    error_text,
    idx_dataset,
    record_parser,
)

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at import time
CACHE_AUTO_BYTES = 4 << 30  # "auto" caches decoded images in memory up to 4 GiB per worker...
CACHE_AUTO_MEMORY_SHARE = 4  # ...and never more than a quarter of the machine's memory
READ_BUFFER_BYTES = 8 << 20  # large reads amortise Cloud Storage latency
MAX_PARALLEL_FILES = 16
# tf.data's own thread pool: at least 16 threads, two per core on bigger machines.
MIN_INPUT_THREADS = 16
INPUT_THREADS_PER_CORE = 2


@dataclass(frozen=True)
class InputData:
    """Files, counts and dataset builders of one run."""

    files: FileSplit
    schema: str
    train_count: int
    eval_count: int
    train_fn: Callable[[Any], Any]  # InputContext -> batched training dataset (repeats)
    eval_fn: Callable[[Any], Any]  # InputContext -> batched evaluation dataset (one pass)


def _idx_or_schema(files: FileSplit) -> tuple[str, int, int]:
    if files.kind == "idx":
        return "idx", check_idx_pair(*files.train)[0], check_idx_pair(*files.eval)[0]
    schema = detect_schema(files.train[0])
    eval_schema = detect_schema(files.eval[0])
    if eval_schema != schema:
        raise DataError(
            f"{files.eval[0]} is in schema {eval_schema} but {files.train[0]} is in {schema}"
        )
    return schema, count_records(files.train), count_records(files.eval)


def load_data(cfg: Config, spec: DatasetSpec, data_dir: str | None = None) -> InputData:
    """Select files, check them, count records and return the dataset builders."""
    files = select_files(
        spec, data_dir or cfg.data_dir, cfg.train_files, cfg.eval_files, cfg.eval_split
    )
    schema, train_count, eval_count = _idx_or_schema(files)
    if (schema == SCHEMA_MNIST) != (spec.name == "mnist") and schema != "idx":
        raise DataError(f"{files.train[0]}: records are {schema}, not {spec.name}")

    def train_fn(ctx: Any) -> Any:
        return training_dataset(cfg, spec, files, schema, train_count, ctx)

    def eval_fn(ctx: Any) -> Any:
        return evaluation_dataset(cfg, spec, files, schema, eval_count, ctx)

    return InputData(files, schema, train_count, eval_count, train_fn, eval_fn)


def _checked_label(label: Any, num_classes: int) -> Any:
    """The label, or an error naming it when it is outside the classes."""
    inside = tf.logical_and(label >= 0, label < num_classes)
    check = tf.debugging.Assert(
        inside, ["label", label, "is outside the classes 0 to", num_classes - 1]
    )
    with tf.control_dependencies([check]):
        return tf.identity(label)


def decoded_shape(spec: DatasetSpec, schema: str, image_size: int) -> tuple[int, int, int]:
    """The shape of a decoded image: MNIST records hold raw pixels of the dataset's own
    size; encoded images are decoded to image_size squares."""
    if schema == SCHEMA_MNIST:
        return spec.image_shape
    return (image_size, image_size, spec.channels)


def record_decoder(spec: DatasetSpec, schema: str, image_size: int) -> Callable[[Any], Any]:
    """Serialized record -> (uint8 image of decoded_shape, checked int32 label)."""
    parse = record_parser(schema, spec.num_classes)
    shape = decoded_shape(spec, schema, image_size)

    def decode(record: Any) -> tuple[Any, Any]:
        image, label = parse(record)
        if schema == SCHEMA_MNIST:
            pixels = tf.reshape(tf.io.decode_raw(image, tf.uint8), shape)
        else:
            pixels = decode_to_square(image, image_size, spec.channels)
        return pixels, _checked_label(label, spec.num_classes)

    return decode


def batch_decoder(spec: DatasetSpec, schema: str, image_size: int) -> Callable[[Any], Any]:
    """Serialized records [n] -> (uint8 images [n, ...], checked labels [n]): record_decoder
    on each record, all inside one function call.

    tf.data hands every element from stage to stage across threads; decoding a batch per
    call instead of a record per call saves that for all but one element in each batch. On
    2 cores, side by side (bench/input_stages.py), the same input reached 0.91 of the JPEG
    decode limit decoding a record per call and 0.96 a batch per call. The
    records of a batch are decoded one after the other: batches in flight, each on its own
    thread, keep the cores busy.
    """
    decode = record_decoder(spec, schema, image_size)
    image = tf.TensorSpec(decoded_shape(spec, schema, image_size), tf.uint8)
    signature = (image, tf.TensorSpec([], tf.int32))

    def decode_batch(records: Any) -> tuple[Any, Any]:
        return tf.map_fn(decode, records, fn_output_signature=signature, parallel_iterations=1)

    return decode_batch


def _idx_records(paths: Sequence[str], spec: DatasetSpec) -> Any:
    images, labels = paths
    return idx_dataset(images, labels).map(
        lambda image, label: (image, _checked_label(label, spec.num_classes))
    )


def _records(
    cfg: Config,
    spec: DatasetSpec,
    paths: Sequence[str],
    kind: str,
    schema: str,
    ctx: Any,
    training: bool,
    repeat: bool = False,
    shuffle_buffer: int = 0,
    batch: int = 0,
) -> Any:
    """Decoded (uint8 image, int label) records of this input pipeline's share, once, or
    over and over with repeat; shuffled with a buffer of that many records if asked; in
    full batches of that many records if asked."""
    pipelines, index = ctx.num_input_pipelines, ctx.input_pipeline_id
    if kind == "idx":
        ds = _idx_records(paths, spec)
        ds = ds.shard(pipelines, index) if pipelines > 1 else ds
        ds = ds.ignore_errors(log_warning=True) if cfg.skip_bad_records else ds
        ds = ds.repeat() if repeat else ds
        ds = ds.shuffle(shuffle_buffer, seed=cfg.seed) if shuffle_buffer else ds
        return ds.batch(batch, drop_remainder=True) if batch else ds
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    by_files = pipelines > 1 and len(paths) >= pipelines
    if by_files:
        files = files.shard(pipelines, index)
    if training:
        # A new file order every epoch; interleaving then mixes several files at once.
        files = files.shuffle(len(paths), seed=cfg.seed, reshuffle_each_iteration=True)
    if repeat:
        # Before the interleave: at an epoch's end the next epoch's files are already open
        # and reading, instead of every reader restarting at once (each a Cloud Storage
        # round trip).
        files = files.repeat()
    ds = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER_BYTES),
        cycle_length=min(len(paths), MAX_PARALLEL_FILES),
        num_parallel_calls=AUTOTUNE,
        deterministic=not training,
    )
    if pipelines > 1 and not by_files:
        ds = ds.shard(pipelines, index)  # fewer files than workers: share by records
    if shuffle_buffer:
        # Shuffling the records as read, before decoding: the buffer holds JPEG bytes, a
        # tenth of the decoded images, and each image goes from the decoder straight into its
        # batch while still in the CPU cache (bench/input_pipeline.py).
        ds = ds.shuffle(shuffle_buffer, seed=cfg.seed)
    if batch and not cfg.skip_bad_records:
        # Batches leave in the order their records were drawn: batches of the same size gain
        # little from overtaking each other (bench/input_stages.py), and with as many in
        # flight as there are threads, one would lag behind by epochs of a small dataset.
        ds = ds.batch(batch, drop_remainder=True)
        decode_batch = batch_decoder(spec, schema, cfg.image_size)
        return ds.map(decode_batch, num_parallel_calls=AUTOTUNE, deterministic=True)
    decode = record_decoder(spec, schema, cfg.image_size)
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=not training)
    # Corrupt records, undecodable images and bad labels are skipped one by one, each logged
    # by tf.data (a bad record in a batch decoded at once would take its batch with it).
    ds = ds.ignore_errors(log_warning=True) if cfg.skip_bad_records else ds
    return ds.batch(batch, drop_remainder=True) if batch else ds


def cache_budget_bytes() -> int:
    """Bytes that --cache auto may fill with decoded images on this machine (training holds
    its share twice during an epoch: the share and the epoch's permuted copy)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return CACHE_AUTO_BYTES
    return min(CACHE_AUTO_BYTES, memory // CACHE_AUTO_MEMORY_SHARE)


def _cache_mode(cfg: Config, spec: DatasetSpec, count: int, ctx: Any) -> str:
    """Where decoded images are kept: "memory", "none" or a cache file prefix."""
    mode = cfg.cache
    if mode == "auto":
        side = cfg.image_size
        decoded = count * side * side * spec.channels // max(1, ctx.num_input_pipelines)
        # Training holds the share twice during an epoch (permuted_batches).
        return "memory" if 2 * decoded <= cache_budget_bytes() else "none"
    return mode


def _cache(ds: Any, mode: str, ctx: Any, name: str) -> Any:
    if mode == "none":
        return ds
    if mode == "memory":
        return ds.cache()
    return ds.cache(f"{mode}-{name}-{ctx.input_pipeline_id}")


def permuted_batches(records: Any, count: int, batch: int, seed: int) -> Any:
    """Endless batches of records held in memory: each epoch a new random permutation.

    The records (at most `count`) are read once into one tensor per component; after that an
    epoch costs one argsort and one gather into [steps, batch, ...], sliced a batch at a
    time: no function call per batch, let alone per record. The gathered epoch is a second
    copy of the share while it lasts. The last count % batch records of each permutation
    wait for a later epoch.
    """
    whole = records.batch(max(1, count)).cache()

    def one_epoch(data: Any, epoch_seed: Any) -> Any:
        images, labels = data
        share = tf.shape(labels)[0]
        check = tf.debugging.assert_greater_equal(
            share, batch, message=f"fewer training records than one batch of {batch}"
        )
        with tf.control_dependencies([check]):
            steps = share // batch
        order = tf.argsort(tf.random.stateless_uniform([share], epoch_seed))
        indices = tf.reshape(order[: steps * batch], [steps, batch])
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(images, indices), tf.gather(labels, indices))
        )

    seeds = tf.data.Dataset.random(seed=seed).batch(2)  # a stateless seed pair per epoch
    return tf.data.Dataset.zip((whole.repeat(), seeds)).flat_map(one_epoch)


def _one_hot(spec: DatasetSpec) -> Callable[[Any, Any], tuple[Any, Any]]:
    """Labels -> one-hot, images as they are; on single records and on batches alike."""

    def one_hot(image: Any, label: Any) -> tuple[Any, Any]:
        return image, tf.one_hot(label, spec.num_classes)

    return one_hot


def _image_prep(spec: DatasetSpec, augment: bool, cast: bool) -> Callable[[Any], Any] | None:
    """What a batch of images needs before the model, or None: images stay uint8 unless
    augmented (augmentation needs batches) or cast is asked for, as the models cast and
    rescale their input themselves."""
    if augment:
        return lambda images: augment_image(images, spec)
    if cast:
        return lambda images: tf.cast(images, tf.float32)
    return None


def _prepare(spec: DatasetSpec, augment: bool, cast: bool) -> Callable[[Any, Any], Any]:
    """Labels -> one-hot and the images' preparation (_image_prep), per batch or record."""
    one_hot = _one_hot(spec)
    images = _image_prep(spec, augment, cast) or (lambda image: image)

    def prepare(image: Any, label: Any) -> tuple[Any, Any]:
        return one_hot(images(image), label)

    return prepare


def augment_image(images: Any, spec: DatasetSpec) -> Any:
    """Random changes that keep the class, per image of a batch [n, h, w, c] -> float32:
    the codelab's flips and saturation for flowers (colour photos), small shifts and turns
    for digits (not flips: a flipped 2 is no 2)."""
    return augment_batch(images, colour=spec.channels == 3)


def training_dataset(
    cfg: Config, spec: DatasetSpec, files: FileSplit, schema: str, count: int, ctx: Any
) -> Any:
    """Shuffled, endless, batched training data for one input pipeline."""
    batch = ctx.get_per_replica_batch_size(cfg.batch_size)
    mode = _cache_mode(cfg, spec, count, ctx)
    train = (cfg, spec, files.train, files.kind, schema, ctx)
    cast = _needs_float_input(cfg)
    if mode == "memory":
        # Labels are one-hot before they are held: after the first epoch, a batch that needs
        # no augmentation is a slice of the epoch's gathered tensor and nothing more.
        records = _records(*train, training=True).map(_one_hot(spec))
        ds = permuted_batches(records, count, batch, cfg.seed)
        prep = _image_prep(spec, cfg.augment, cast)
        if prep is not None:
            ds = ds.map(lambda images, labels: (prep(images), labels), num_parallel_calls=AUTOTUNE)
        return ds.prefetch(AUTOTUNE)
    # Full batches only: static shapes, as TPUs require. The shuffle buffer mixes records
    # across epoch boundaries too.
    if mode == "none":
        ds = _records(
            *train, training=True, repeat=True, shuffle_buffer=cfg.shuffle_buffer, batch=batch
        )
    else:  # a cache file of decoded images, written in the first epoch
        ds = _cache(_records(*train, training=True), mode, ctx, "train").repeat()
        ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed).batch(batch, drop_remainder=True)
    # Whole batches at once: per-image ops were the bottleneck of small models
    # (bench/train_throughput.py).
    ds = ds.map(_prepare(spec, cfg.augment, cast), num_parallel_calls=AUTOTUNE)
    return with_own_threads(ds.prefetch(AUTOTUNE))


def with_own_threads(ds: Any) -> Any:
    """The dataset on a thread pool of its own, for inputs that read and decode files.

    Without one, tf.data runs its parallel stages on the process's shared pool of one thread
    per core, where the file readers, the decoders and the training step's ops queue behind
    each other: on 2 cores our streaming input reached 0.80-0.84 of the JPEG decode limit that
    way and 0.98-1.06 with a private pool of 8-16 threads (bench/input_pipeline.py). Data
    held in memory does without: there the pool's idle threads cost more than they save.
    """
    options = tf.data.Options()
    threads = max(MIN_INPUT_THREADS, INPUT_THREADS_PER_CORE * (os.cpu_count() or 1))
    options.threading.private_threadpool_size = threads
    return ds.with_options(options)


def _needs_float_input(cfg: Config) -> bool:
    """TPUs get float32 batches, the type TPU input pipelines commonly feed; elsewhere the
    model's own cast does it, on the accelerator."""
    return cfg.distribution == "tpu"


def evaluation_dataset(
    cfg: Config, spec: DatasetSpec, files: FileSplit, schema: str, count: int, ctx: Any
) -> Any:
    """Every evaluation record exactly once, in file order."""
    batch = ctx.get_per_replica_batch_size(cfg.batch_size)
    ds = _records(cfg, spec, files.eval, files.kind, schema, ctx, training=False)
    mode = _cache_mode(cfg, spec, count, ctx)
    ds = _cache(ds, mode, ctx, "eval")
    ds = ds.map(_prepare(spec, False, _needs_float_input(cfg)), num_parallel_calls=AUTOTUNE)
    # TPUs compile for static shapes: there the last partial batch is dropped.
    ds = ds.batch(batch, drop_remainder=cfg.distribution == "tpu").prefetch(AUTOTUNE)
    return ds if mode == "memory" else with_own_threads(ds)


def find_bad_record(cfg: Config, spec: DatasetSpec, data: InputData) -> str | None:
    """Read every file one record at a time; where the first bad record is, or None.

    Runs only after a failure: the parallel pipeline's errors do not say which file failed.
    """
    if data.files.kind == "idx":
        sources = [
            (" / ".join(group), _idx_records(group, spec))
            for group in (data.files.train, data.files.eval)
        ]
    else:
        decode = record_decoder(spec, data.schema, cfg.image_size)
        sources = [
            (path, tf.data.TFRecordDataset(path).map(decode))
            for path in data.files.train + data.files.eval
        ]
    for name, records in sources:
        iterator = iter(records)
        index = 0
        while True:
            try:
                next(iterator)
            except StopIteration:
                break
            except tf.errors.OpError as err:
                return f"{name}: record {index}: {error_text(err)}"
            index += 1
    return None
