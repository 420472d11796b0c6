"""Converters to TFRecord shards: `python -m trainer.convert image-folder|mnist-idx|synthetic`.

  image-folder  one subfolder of JPEG/PNG images per class (the layout of gs://flowers-public)
                -> shards in the tfrecords-jpeg-192x192-2 schema: centre-cropped, resized to
                --size and re-encoded as JPEG, shuffled with a fixed seed before sharding
  mnist-idx     the MNIST IDX files (plain or .gz) -> shards of MNIST records
  synthetic     the generated smoke datasets (synthetic flowers, font digits), any size

Input and output may be local or gs://. Shard names carry their record count, like the public
flowers00-230.tfrec, so training counts records without reading them. Bad input ends with a
one-line error naming the file and a non-zero status (2: missing input or bad arguments, 1:
data that cannot be converted), and the shards written before it are removed.

Examples:
  python -m trainer.convert image-folder ./flower_photos gs://BUCKET/flowers --size 192
  python -m trainer.convert mnist-idx gs://mnist-public gs://BUCKET/mnist
  python -m trainer.convert synthetic flowers /tmp/flowers --count 5000
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from trainer.datasets import DIGIT_CLASSES, FLOWER_CLASSES, MNIST_IDX_FILES
from trainer.files import MissingFilesError
from trainer.files import find_idx_pairs as idx_pairs_in
from trainer.flags import positive_int
from trainer.keras_api import tf

PROG = "trainer.convert"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
READ_THREADS = 8  # images are read (possibly from gs://) and re-encoded in parallel
SYNTHETIC_DEFAULTS = {"flowers": (600, 100), "mnist": (3000, 1000)}  # count, records per shard

T = TypeVar("T")
R = TypeVar("R")


class UsageError(ValueError):
    """Arguments that cannot work (unknown class, shards already there): exit status 2."""


@dataclass(frozen=True)
class Summary:
    """What a conversion wrote."""

    output: str
    shards: tuple[str, ...]  # the files written: TFRecord shards, or IDX files
    size_bytes: int
    per_class: dict[str, int]

    def lines(self) -> list[str]:
        records = sum(self.per_class.values())
        names = [p.rsplit("/", 1)[-1] for p in self.shards]
        listed = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
        out = [
            f"{records} records in {len(self.shards)} {_kind(names)}, {_human(self.size_bytes)}, "
            f"in {self.output}: {listed}"
        ]
        width = max((len(name) for name in self.per_class), default=0)
        out += [f"  {name:<{width}}  {count}" for name, count in self.per_class.items()]
        return out


# ---------------------------------------------------------------------------- shards


def shard_sizes(total: int, per_shard: int) -> list[int]:
    """Full shards of per_shard records, then the rest: 3670 by 230 -> 15 x 230 and 220."""
    full, rest = divmod(total, per_shard)
    return [per_shard] * full + ([rest] if rest else [])


def shard_names(prefix: str, sizes: Sequence[int]) -> list[str]:
    width = max(2, len(str(len(sizes) - 1)))
    return [f"{prefix}{i:0{width}d}-{n}.tfrec" for i, n in enumerate(sizes)]


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def check_output(output: str, prefix: str) -> None:
    """Refuse to mix new shards with old ones of the same name pattern."""
    if tf.io.gfile.isdir(output) and tf.io.gfile.glob(_join(output, f"{prefix}*.tfrec")):
        raise UsageError(
            f"{output} already holds {prefix}*.tfrec shards; remove them or choose another folder"
        )


def write_shards(
    records: Iterable[bytes], total: int, output: str, prefix: str, per_shard: int
) -> list[str]:
    """Stream records into shards named with their counts; on failure remove what was written."""
    tf.io.gfile.makedirs(output)
    sizes = shard_sizes(total, per_shard)
    paths = [_join(output, name) for name in shard_names(prefix, sizes)]
    stream = iter(records)
    written: list[str] = []
    try:
        for path, size in zip(paths, sizes, strict=True):
            written.append(path)
            with tf.io.TFRecordWriter(path) as writer:
                for _ in range(size):
                    record = next(stream, None)
                    if record is None:
                        raise RuntimeError(f"{path}: input ended before {total} records")
                    writer.write(record)
    except BaseException:
        remove_quietly(written)
        raise
    return paths


def remove_quietly(paths: Iterable[str]) -> None:
    for path in paths:
        try:
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
        except tf.errors.OpError:
            pass


def summarize(output: str, shards: Sequence[str], per_class: dict[str, int]) -> Summary:
    size = sum(tf.io.gfile.stat(path).length for path in shards)
    return Summary(output, tuple(shards), size, per_class)


def progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar on stderr; hidden when stderr is not a terminal (logs stay readable)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr, disable=None)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """fn over items in threads, results in input order, a bounded number in flight."""
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


# ---------------------------------------------------------------------------- image-folder


def class_folders(source: str) -> list[str]:
    """Sorted names of the subfolders of source (local or gs://)."""
    if not tf.io.gfile.isdir(source):
        raise MissingFilesError(f"{source}: folder not found")
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(source)]
    return sorted(name for name in names if tf.io.gfile.isdir(_join(source, name)))


def find_images(source: str, classes: Sequence[str]) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(image path, class id)]): classes from --classes or the folder names."""
    folders = class_folders(source)
    if not folders:
        raise MissingFilesError(
            f"{source}: no class folders (expected one subfolder of JPEG/PNG images per class)"
        )
    names = list(classes) or folders
    for name in names:
        if name not in folders:
            raise UsageError(
                f"--classes names {name!r} but {source} has no folder {name} "
                f"(it has {', '.join(folders)})"
            )
    items = []
    for class_id, name in enumerate(names):
        folder = _join(source, name)
        files = sorted(
            _join(folder, f)
            for f in tf.io.gfile.listdir(folder)
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise MissingFilesError(f"{folder}: no JPEG or PNG images")
        items += [(path, class_id) for path in files]
    return names, items


def square_jpeg(encoded: bytes, size: int, quality: int) -> bytes:
    """JPEG/PNG bytes -> centre-cropped, resized size x size RGB, re-encoded as JPEG."""
    from trainer.images import square_uint8

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.io.encode_jpeg(square_uint8(image, size), quality=quality).numpy()


def _convert_image(path: str, size: int, quality: int) -> bytes:
    from trainer.records import DataError

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            encoded = f.read()
        return square_jpeg(encoded, size, quality)
    except tf.errors.OpError as err:
        raise DataError(f"{path}: not a readable JPEG or PNG image ({_first_line(err)})") from err


def convert_image_folder(
    source: str,
    output: str,
    size: int = 192,
    classes: Sequence[str] = (),
    per_shard: int = 230,
    prefix: str = "flowers",
    seed: int = 42,
    quality: int = 95,
) -> Summary:
    """Class folders of images -> shuffled shards in the tfrecords-jpeg-192x192-2 schema."""
    import numpy as np

    from trainer.records import flowers_example

    names, items = find_images(source, classes)
    check_output(output, prefix)
    # Shuffled once, with a fixed seed: every shard mixes the classes, and a rerun is identical.
    order = np.random.default_rng(seed).permutation(len(items))
    items = [items[i] for i in order]
    bar = progress_bar(len(items), "image-folder")

    def record(item: tuple[str, int]) -> bytes:
        path, class_id = item
        example = flowers_example(
            _convert_image(path, size, quality), class_id, names, (size, size)
        )
        bar.update()
        return example

    with bar:
        shards = write_shards(
            ordered_map(record, items, READ_THREADS), len(items), output, prefix, per_shard
        )
    counts = Counter(class_id for _, class_id in items)
    return summarize(output, shards, {name: counts[i] for i, name in enumerate(names)})


# ---------------------------------------------------------------------------- mnist-idx


def find_idx_pairs(source: str) -> dict[str, tuple[str, str]]:
    """{"train"/"eval": (images, labels)} of the MNIST IDX files in source, plain or .gz."""
    pairs = idx_pairs_in(source)
    if not pairs:
        wanted = ", ".join(n for names in MNIST_IDX_FILES.values() for n in names)
        raise MissingFilesError(f"{source}: no MNIST IDX files ({wanted}, plain or .gz)")
    return pairs


def _idx_records(images: str, labels: str, bar: Any) -> Iterator[bytes]:
    from trainer.records import DataError, idx_dataset, mnist_example

    try:
        for pixels, digits in idx_dataset(images, labels).batch(1024).as_numpy_iterator():
            for image, digit in zip(pixels, digits, strict=True):
                yield mnist_example(image[..., 0], int(digit))
            bar.update(len(digits))
    except tf.errors.OpError as err:
        raise DataError(f"{images}: cannot read IDX records ({_first_line(err)})") from err


def convert_mnist_idx(source: str, output: str, per_shard: int = 5000) -> Summary:
    """MNIST IDX files -> mnist-train*/mnist-eval* shards of MNIST records, in file order."""
    from trainer.records import check_idx_pair

    pairs = find_idx_pairs(source)
    counts = {split: check_idx_pair(*pair)[0] for split, pair in pairs.items()}
    for split in pairs:
        check_output(output, f"mnist-{split}")
    shards: list[str] = []
    per_class: Counter[str] = Counter()
    try:
        for split, (images, labels) in pairs.items():
            with progress_bar(counts[split], f"mnist-idx {split}") as bar:
                shards += write_shards(
                    _idx_records(images, labels, bar),
                    counts[split],
                    output,
                    f"mnist-{split}",
                    per_shard,
                )
            per_class.update(_idx_label_counts(labels))
    except BaseException:
        remove_quietly(shards)
        raise
    return summarize(output, shards, {d: per_class[d] for d in DIGIT_CLASSES})


def _idx_label_counts(labels_path: str) -> Counter[str]:
    import gzip

    import numpy as np

    with tf.io.gfile.GFile(labels_path, "rb") as f:
        data = f.read()
    if labels_path.endswith(".gz"):
        data = gzip.decompress(data)
    return Counter(str(int(d)) for d in np.frombuffer(data[8:], np.uint8))


# ---------------------------------------------------------------------------- synthetic


def convert_synthetic_flowers(
    output: str,
    count: int,
    size: int = 192,
    per_shard: int = 100,
    seed: int = 0,
    schema_v1: bool = False,
) -> Summary:
    """Synthetic flowers as shards in the -2 schema (or the older one with schema_v1)."""
    from trainer.records import flowers_example, flowers_example_v1
    from trainer.synthetic import flower_jpegs

    check_output(output, "flowers")
    counts: Counter[int] = Counter()
    bar = progress_bar(count, "synthetic flowers")

    def records() -> Iterator[bytes]:
        for jpeg, class_id in flower_jpegs(count, size, seed):
            counts[class_id] += 1
            bar.update()
            if schema_v1:
                yield flowers_example_v1(jpeg, class_id, FLOWER_CLASSES)
            else:
                yield flowers_example(jpeg, class_id, FLOWER_CLASSES, (size, size))

    with bar:
        shards = write_shards(records(), count, output, "flowers", per_shard)
    return summarize(output, shards, {n: counts[i] for i, n in enumerate(FLOWER_CLASSES)})


def _font_digit_chunks(count: int, seed: int, bar: Any) -> Iterator[tuple[Any, Any]]:
    """Font digits in chunks, so that the bar moves and memory stays flat."""
    from trainer.synthetic import font_digits

    chunk = 500
    for start in range(0, count, chunk):
        images, labels = font_digits(min(chunk, count - start), seed * 1_000_003 + start)
        bar.update(len(labels))
        yield images, labels


def convert_synthetic_mnist(
    output: str,
    count: int,
    eval_count: int,
    per_shard: int = 1000,
    seed: int = 0,
    idx: bool = False,
) -> Summary:
    """Font digits as the four IDX files, or as mnist-train*/mnist-eval* shards."""
    import numpy as np

    from trainer.records import mnist_example, write_idx

    tf.io.gfile.makedirs(output)
    written: list[str] = []
    per_class: Counter[str] = Counter()
    for split, n, split_seed in (("train", count, seed), ("eval", eval_count, seed + 1)):
        if not idx:
            check_output(output, f"mnist-{split}")
        with progress_bar(n, f"synthetic mnist {split}") as bar:
            chunks = list(_font_digit_chunks(n, split_seed, bar))
        images = np.concatenate([c[0] for c in chunks])
        labels = np.concatenate([c[1] for c in chunks])
        per_class.update(str(int(d)) for d in labels)
        if idx:
            for name, array in zip(MNIST_IDX_FILES[split], (images, labels), strict=True):
                written.append(_join(output, name))
                write_idx(written[-1], array)
        else:
            records = (mnist_example(im, int(d)) for im, d in zip(images, labels, strict=True))
            written += write_shards(records, n, output, f"mnist-{split}", per_shard)
    return summarize(output, written, {d: per_class[d] for d in DIGIT_CLASSES})


# ---------------------------------------------------------------------------- command line


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1 to 100, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Convert images or MNIST files to TFRecord shards (local or gs://).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    folder = sub.add_parser(
        "image-folder", help="class folders of JPEG/PNG images -> flowers-schema shards"
    )
    folder.add_argument("source", help="folder with one subfolder of images per class")
    folder.add_argument("output", help="folder for the shards")
    folder.add_argument("--size", type=positive_int, default=192, help="square side (192)")
    folder.add_argument(
        "--classes",
        default="",
        help="comma-separated class folders, in label order (default: all subfolders, sorted)",
    )
    folder.add_argument(
        "--per-shard", type=positive_int, default=230, help="records per shard (230, as public)"
    )
    folder.add_argument("--prefix", default="flowers", help="shard name prefix (flowers)")
    folder.add_argument("--seed", type=int, default=42, help="seed of the shuffle (42)")
    folder.add_argument("--quality", type=_quality, default=95, help="JPEG quality (95)")

    idx = sub.add_parser("mnist-idx", help="MNIST IDX files (plain or .gz) -> MNIST shards")
    idx.add_argument("source", help="folder with train-images-idx3-ubyte etc. (or .gz)")
    idx.add_argument("output", help="folder for the shards")
    idx.add_argument(
        "--per-shard", type=positive_int, default=5000, help="records per shard (5000)"
    )

    synth = sub.add_parser("synthetic", help="generated smoke datasets of any size")
    synth.add_argument("dataset", choices=("flowers", "mnist"))
    synth.add_argument("output", help="folder for the files")
    synth.add_argument(
        "--format",
        choices=("tfrecord", "tfrecord-v1", "idx"),
        default="tfrecord",
        help="tfrecord (flowers: the -2 schema), tfrecord-v1 (flowers: the older schema), "
        "idx (mnist: the four IDX files)",
    )
    synth.add_argument("--count", type=positive_int, help="records (flowers 600, mnist 3000)")
    synth.add_argument(
        "--eval-count", type=positive_int, help="mnist: evaluation records (count / 5)"
    )
    synth.add_argument("--size", type=positive_int, default=192, help="flowers: side (192)")
    synth.add_argument("--per-shard", type=positive_int, help="records per shard (100, 1000)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the generator (0)")
    return p


def run(args: argparse.Namespace) -> Summary:
    if args.command == "image-folder":
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        return convert_image_folder(
            args.source,
            args.output,
            args.size,
            classes,
            args.per_shard,
            args.prefix,
            args.seed,
            args.quality,
        )
    if args.command == "mnist-idx":
        return convert_mnist_idx(args.source, args.output, args.per_shard)
    count, per_shard = SYNTHETIC_DEFAULTS[args.dataset]
    count, per_shard = args.count or count, args.per_shard or per_shard
    if args.dataset == "flowers":
        if args.format == "idx":
            raise UsageError("--format idx is for mnist; flowers are tfrecord or tfrecord-v1")
        return convert_synthetic_flowers(
            args.output, count, args.size, per_shard, args.seed, args.format == "tfrecord-v1"
        )
    if args.format == "tfrecord-v1":
        raise UsageError("--format tfrecord-v1 is a flowers schema; mnist is tfrecord or idx")
    eval_count = args.eval_count or max(1, count // 5)
    return convert_synthetic_mnist(
        args.output, count, eval_count, per_shard, args.seed, args.format == "idx"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from trainer.records import DataError

    try:
        summary = run(args)
    except (UsageError, MissingFilesError) as err:
        return _fail(2, str(err))
    except DataError as err:
        return _fail(1, str(err))
    except tf.errors.OpError as err:
        return _fail(1, f"{type(err).__name__}: {_first_line(err)}")
    print("\n".join(summary.lines()))
    return 0


# ---------------------------------------------------------------------------- helpers


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: error: {_first_line(message)}", file=sys.stderr)
    return status


def _first_line(err: object) -> str:
    text = (getattr(err, "message", None) or str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _kind(names: Sequence[str]) -> str:
    return "shard(s)" if all(n.endswith(".tfrec") for n in names) else "file(s)"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


if __name__ == "__main__":
    sys.exit(main())
