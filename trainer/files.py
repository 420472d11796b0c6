"""Which files a run reads: explicit lists and globs, or a data folder split by files.

Explicit file names are never listed, only opened: some public buckets (gs://flowers-public)
deny listing, and naming the files is how those are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainer.datasets import MNIST_IDX_FILES, DatasetSpec
from trainer.keras_api import tf
from trainer.records import DataError

_GLOB_CHARS = set("*?[")


class MissingFilesError(DataError):
    """No file matches what the user asked for; a usage error (exit status 2)."""


@dataclass(frozen=True)
class FileSplit:
    kind: str  # "idx": (images, labels) pairs; "tfrecord": shards
    train: tuple[str, ...]
    eval: tuple[str, ...]


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def expand(entries: Sequence[str]) -> tuple[str, ...]:
    """Expand globs (sorted) and check that named files exist, in the order given."""
    paths: list[str] = []
    for entry in entries:
        if _GLOB_CHARS & set(entry):
            matches = sorted(tf.io.gfile.glob(entry))
            if not matches:
                raise MissingFilesError(f"no files match {entry}")
            paths.extend(matches)
        else:
            if not tf.io.gfile.exists(entry):
                raise MissingFilesError(f"file not found: {entry}")
            paths.append(entry)
    return tuple(paths)


def split_by_files(paths: Sequence[str], eval_split: float) -> tuple[tuple[str, ...], ...]:
    """Hold out the first eval_split of the files (at least one, leaving one for training)."""
    if len(paths) < 2:
        raise MissingFilesError(
            f"need at least 2 files to split into training and evaluation, found {len(paths)} "
            f"({', '.join(paths) or 'none'}); name them with --train-files/--eval-files"
        )
    held_out = min(max(1, int(len(paths) * eval_split)), len(paths) - 1)
    return tuple(paths[held_out:]), tuple(paths[:held_out])


def _idx_pairs(paths: Sequence[str]) -> tuple[str, ...] | None:
    """IDX files given by name, ordered (images, labels); None when they are not IDX files."""
    images = [p for p in paths if "idx3-ubyte" in p.rsplit("/", 1)[-1]]
    labels = [p for p in paths if "idx1-ubyte" in p.rsplit("/", 1)[-1]]
    if not images and not labels:
        return None
    if len(images) != 1 or len(labels) != 1 or len(paths) != 2:
        raise MissingFilesError(
            f"IDX input needs exactly one images (idx3) and one labels (idx1) file, got "
            f"{', '.join(paths)}"
        )
    return (images[0], labels[0])


def find_idx_pairs(folder: str) -> dict[str, tuple[str, str]]:
    """{"train"/"eval": (images, labels)} of the MNIST IDX files in folder, plain or .gz."""
    pairs = {}
    for split, names in MNIST_IDX_FILES.items():
        for suffix in ("", ".gz"):
            paths = tuple(_join(folder, n + suffix) for n in names)
            if all(tf.io.gfile.exists(p) for p in paths):
                pairs[split] = paths
                break
    return pairs


def _idx_in_folder(folder: str) -> FileSplit | None:
    pairs = find_idx_pairs(folder)
    if not pairs:
        return None
    if "train" not in pairs or "eval" not in pairs:
        missing = sorted(set(MNIST_IDX_FILES) - set(pairs))[0]
        raise MissingFilesError(
            f"{folder} has only part of the MNIST IDX files: "
            f"missing {', '.join(MNIST_IDX_FILES[missing])}"
        )
    return FileSplit("idx", pairs["train"], pairs["eval"])


def select_files(
    spec: DatasetSpec,
    data_dir: str | None,
    train_files: Sequence[str],
    eval_files: Sequence[str],
    eval_split: float,
) -> FileSplit:
    """The training and evaluation files of a run."""
    if train_files:
        train = expand(train_files)
        if eval_files:
            evaluation = expand(eval_files)
        else:
            train, evaluation = split_by_files(train, eval_split)
        train_pair, eval_pair = _idx_pairs(train), _idx_pairs(evaluation)
        if train_pair and eval_pair:
            return FileSplit("idx", train_pair, eval_pair)
        return FileSplit("tfrecord", train, evaluation)
    if not data_dir:
        raise MissingFilesError("no input: give --data-dir or --train-files")
    if spec.name == "mnist":
        found = _idx_in_folder(data_dir)
        if found:
            return found
    pattern = _join(data_dir, spec.tfrecord_glob)
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        searched = [pattern]
        if spec.name == "mnist":
            searched.insert(0, _join(data_dir, "{" + ",".join(MNIST_IDX_FILES["train"]) + "}"))
        raise MissingFilesError(
            f"no {spec.name} files in {data_dir}: searched {' and '.join(searched)}"
        )
    train, evaluation = split_by_files(paths, eval_split)
    return FileSplit("tfrecord", train, evaluation)
