"""Bad input: a one-line error naming the culprit, a non-zero exit, nothing at the model path."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.datasets import FLOWER_CLASSES
from trainer.records import flowers_example, mnist_example, write_idx, write_tfrecord
from trainer.task import main

SIZE = 32


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _good_records(n: int, seed: int) -> list[bytes]:
    return [flowers_example(_jpeg(seed + i), i % 5, FLOWER_CLASSES, (SIZE, SIZE)) for i in range(n)]


@pytest.fixture
def shards(tmp_path) -> list[str]:
    """Four good flowers shards of 8 records; tests spoil the last one (a training file)."""
    folder = tmp_path / "data"
    folder.mkdir()
    paths = []
    for shard in range(4):
        path = str(folder / f"flowers{shard:02d}-8.tfrec")
        write_tfrecord(path, _good_records(8, 100 * shard))
        paths.append(path)
    return paths


def _run(argv: list[str], tmp_path, capsys) -> tuple[int, str]:
    model_dir = tmp_path / "out" / "model"
    code = main(
        argv + ["--job-dir", str(tmp_path / "out"), "--epochs", "1", "--batch-size", "4", "--cpu"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("trainer.task: error:")]
    assert len(errors) == 1, err
    assert not model_dir.exists()
    leftovers = [n for n in os.listdir(tmp_path / "out")] if (tmp_path / "out").exists() else []
    assert not [n for n in leftovers if n.startswith("model")], leftovers
    return code, errors[0]


def _flowers(shards: list[str]) -> list[str]:
    folder = os.path.dirname(shards[0])
    return ["--dataset", "flowers", "--data-dir", folder, "--image-size", str(SIZE)]


def test_empty_glob_and_missing_file_are_usage_errors(tmp_path, capsys) -> None:
    code, line = _run(
        ["--dataset", "flowers", "--train-files", f"{tmp_path}/nothing*.tfrec"], tmp_path, capsys
    )
    assert code == 2 and f"no files match {tmp_path}/nothing*.tfrec" in line
    code, line = _run(
        ["--dataset", "flowers", "--train-files", f"{tmp_path}/a.tfrec,{tmp_path}/b.tfrec"],
        tmp_path,
        capsys,
    )
    assert code == 2 and f"file not found: {tmp_path}/a.tfrec" in line


def test_data_dir_without_matching_files_names_the_patterns(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, line = _run(["--data-dir", str(tmp_path / "empty")], tmp_path, capsys)
    assert code == 2
    assert f"searched {tmp_path}/empty/{{train-images-idx3-ubyte" in line
    assert f"{tmp_path}/empty/*.tfrec" in line


def test_truncated_tfrecord_names_the_file(shards, tmp_path, capsys) -> None:
    with open(shards[-1], "r+b") as f:
        f.truncate(os.path.getsize(shards[-1]) - 300)
    code, line = _run(_flowers(shards), tmp_path, capsys)
    assert code == 1 and f"{shards[-1]}: record 7:" in line


def test_corrupted_record_crc_names_the_file_and_record(shards, tmp_path, capsys) -> None:
    data = bytearray(Path(shards[-1]).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(8)
    Path(shards[-1]).write_bytes(bytes(data))
    code, line = _run(_flowers(shards), tmp_path, capsys)
    assert code == 1 and shards[-1] in line and "corrupted record" in line.lower()


@pytest.mark.parametrize(
    ("bad_record", "needle"),
    [
        (flowers_example(b"not a jpeg at all", 1, FLOWER_CLASSES, (SIZE, SIZE)), "record 3:"),
        (flowers_example(_jpeg(1), 7, (*FLOWER_CLASSES, "x", "y", "z"), (SIZE, SIZE)), "outside"),
        (mnist_example(np.zeros((28, 28), np.uint8), 3), "record 3:"),
    ],
    ids=["undecodable-jpeg", "label-outside-classes", "wrong-schema"],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_bad_record_in_a_later_file_names_file_and_record(
    shards, tmp_path, capsys, bad_record: bytes, needle: str, streaming: bool
) -> None:
    records = _good_records(8, 900)
    records[3] = bad_record
    write_tfrecord(shards[-1], records)
    # In memory, the first epoch decodes every record of every file, one by one. Streaming
    # decodes a batch at a time, and only the records it draws: from the bad file alone, in
    # order, the first batch holds the bad record.
    flags = _flowers(shards)
    if streaming:
        flags = ["--dataset", "flowers", "--image-size", str(SIZE), "--cache", "none"]
        flags += ["--train-files", shards[-1], "--eval-files", shards[0], "--shuffle-buffer", "1"]
    code, line = _run(flags, tmp_path, capsys)
    assert code == 1 and shards[-1] in line and needle in line


@pytest.mark.parametrize("cache", ["auto", "none"], ids=["in-memory", "streaming"])
def test_skip_bad_records_trains_past_a_bad_image(shards, tmp_path, capsys, cache: str) -> None:
    records = _good_records(8, 900)
    records[3] = flowers_example(b"not a jpeg at all", 1, FLOWER_CLASSES, (SIZE, SIZE))
    write_tfrecord(shards[-1], records)
    code = main(
        _flowers(shards)
        + ["--skip-bad-records", "--cache", cache]
        + ["--job-dir", str(tmp_path / "out"), "--epochs", "1"]
        + ["--batch-size", "4", "--cpu", "--steps-per-epoch", "3"]
    )
    assert code == 0
    assert (tmp_path / "out" / "model" / "saved_model.pb").exists()


def test_mnist_record_of_the_wrong_image_size_is_named(tmp_path, capsys) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    good = [mnist_example(np.full((28, 28), i, np.uint8), i % 10) for i in range(8)]
    write_tfrecord(str(folder / "a.tfrec"), good)
    write_tfrecord(
        str(folder / "b.tfrec"), good[:5] + [mnist_example(np.zeros((20, 20), np.uint8), 1)]
    )
    code, line = _run(
        [
            "--train-files",
            str(folder / "b.tfrec"),
            "--eval-files",
            str(folder / "a.tfrec"),
            "--model",
            "softmax",
        ],
        tmp_path,
        capsys,
    )
    assert code == 1 and f"{folder}/b.tfrec: record 5:" in line


def test_idx_with_bad_magic_or_mismatched_counts(tmp_path, capsys, mnist_dir) -> None:
    folder = tmp_path / "idx"
    shutil.copytree(mnist_dir, folder)
    write_idx(str(folder / "t10k-labels-idx1-ubyte"), np.zeros(5, np.uint8))
    code, line = _run(["--data-dir", str(folder), "--model", "softmax"], tmp_path, capsys)
    assert code == 1 and "t10k-images-idx3-ubyte holds 96 images but" in line
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + bytes(64))
    code, line = _run(["--data-dir", str(folder), "--model", "softmax"], tmp_path, capsys)
    assert code == 1 and "train-images-idx3-ubyte: holds labels, not images" in line
