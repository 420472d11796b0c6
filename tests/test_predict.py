"""`python -m trainer.predict`: image files in, classes out, and a Vertex request body."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.run_outputs import Run, mnist_run
from trainer import predict
from trainer.datasets import DATASETS, FLOWER_CLASSES
from trainer.synthetic import flower_jpegs, font_digits

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- digits into MNIST pixels


def ink_box(pixels: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(pixels.max(axis=1) > 50)
    cols = np.flatnonzero(pixels.max(axis=0) > 50)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    total = pixels.sum()
    ys, xs = np.indices(pixels.shape)
    return (ys * pixels).sum() / total, (xs * pixels).sum() / total


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    images, _ = font_digits(3, seed=4)
    return images[int(np.argmax(images.reshape(3, -1).max(axis=1)))]  # a drawn (not blank) one


def test_mnist_sized_digits_pass_through_unchanged(digit: np.ndarray) -> None:
    image = Image.fromarray(digit)
    assert np.array_equal(predict.digit_pixels(image), digit.astype(np.float32))
    inverted = Image.fromarray(255 - digit)  # dark on light: turned back to light on dark
    assert np.array_equal(predict.digit_pixels(inverted), digit.astype(np.float32))


def test_large_dark_on_light_digits_become_mnist_digits(digit: np.ndarray) -> None:
    photo = Image.fromarray(255 - digit).resize((150, 120), Image.BICUBIC).convert("RGB")
    pixels = predict.digit_pixels(photo)
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32
    assert pixels.max() == 255 and np.median(pixels) == 0  # light ink on black
    assert max(ink_box(pixels)) in (19, 20, 21)  # fitted to MNIST's 20-pixel box
    cy, cx = centre_of_mass(pixels)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by mass, as MNIST is


def test_transparent_background_counts_as_paper(digit: np.ndarray) -> None:
    rgba = np.zeros((56, 56, 4), np.uint8)  # black ink, alpha = ink, on transparent black
    rgba[..., 3] = np.asarray(Image.fromarray(digit).resize((56, 56)))
    pixels = predict.digit_pixels(Image.fromarray(rgba, "RGBA"))
    assert pixels.max() == 255 and pixels[0, 0] == 0 and pixels.sum() > 255 * 30


# ---------------------------------------------------------------- an MNIST model


@pytest.fixture(scope="module")
def run(mnist_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    result = mnist_run(mnist_dir, tmp_path_factory)
    assert result.status == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int]]:
    """Twelve drawn digits as large dark-on-light pictures, JPEG and PNG."""
    folder = tmp_path_factory.mktemp("digits")
    images, labels = font_digits(40, seed=21)
    drawn = [i for i in range(40) if images[i].max() > 150][:12]
    files = []
    for n, i in enumerate(drawn):
        picture = Image.fromarray(255 - images[i]).resize((112, 112), Image.BICUBIC)
        path = folder / f"digit{n}.{'jpg' if n % 2 else 'png'}"
        picture.convert("RGB").save(path, quality=90)
        files.append((str(path), int(labels[i])))
    return files


def printed_rows(out: str) -> list[tuple[str, str, float]]:
    header, *rows = out.strip().splitlines()
    assert header.split() == ["FILE", "CLASS", "PROBABILITY"]
    return [(r.split()[0], r.split()[1], float(r.split()[2])) for r in rows]


def test_digit_pictures_are_predicted_and_written_as_vertex_instances(
    run: Run, digit_files: list[tuple[str, int]], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "instances.json"
    paths = [p for p, _ in digit_files]
    assert predict.main([str(run.model_dir), *paths, "--instances-out", str(out)]) == 0
    rows = printed_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == paths
    assert all(0.0 <= r[2] <= 1.0 for r in rows)
    right = sum(row[1] == str(label) for row, (_, label) in zip(rows, digit_files, strict=True))
    assert right >= 10, rows

    body = json.loads(out.read_text())
    assert list(body) == ["instances"] and len(body["instances"]) == len(paths)
    assert all(list(instance) == ["pixels"] for instance in body["instances"])
    pixels = np.array([instance["pixels"] for instance in body["instances"]], np.float32)
    assert pixels.shape == (len(paths), 28, 28) and pixels.min() >= 0 and pixels.max() <= 255
    # What Vertex feeds the model from this body gives the classes printed here.
    from trainer.export import load_serving

    served = load_serving(str(run.model_dir))(pixels=pixels)
    assert [n.decode() for n in served["class_names"].numpy()] == [r[1] for r in rows]


# ---------------------------------------------------------------- a flowers model


@pytest.fixture(scope="module")
def flowers_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained flowers convnet, exported: the serving path is what is tested here."""
    from trainer.export import save_model
    from trainer.models import ModelOptions, build_model

    spec = DATASETS["flowers"]
    path = str(tmp_path_factory.mktemp("flowers-model") / "model")
    save_model(build_model("convnet", spec, 64, ModelOptions()), spec, 64, path)
    return path


@pytest.fixture(scope="module")
def flower_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("flowers-files")
    (jpeg, _), (other, _) = list(flower_jpegs(2, size=80, seed=9))
    files = [folder / "rose.jpg", folder / "other.png", folder / "other.bmp"]
    files[0].write_bytes(jpeg)
    Image.open(io.BytesIO(other)).save(files[1])
    Image.open(io.BytesIO(other)).save(files[2])
    return files


def test_flower_files_are_sent_as_base64_image_bytes(
    flowers_model: str, flower_files: list[Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "instances.json"
    paths = [str(p) for p in flower_files]
    assert predict.main([flowers_model, *paths, "--instances-out", str(out)]) == 0
    rows = printed_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == paths and all(r[1] in FLOWER_CLASSES for r in rows)

    instances = json.loads(out.read_text())["instances"]
    assert all(list(i) == ["image_bytes"] and list(i["image_bytes"]) == ["b64"] for i in instances)
    sent = [base64.b64decode(i["image_bytes"]["b64"]) for i in instances]
    assert sent[0] == flower_files[0].read_bytes()  # JPEG and PNG go as they are
    assert sent[1] == flower_files[1].read_bytes()
    assert sent[2].startswith(b"\x89PNG")  # BMP is re-encoded for the model's decoder
    from trainer.export import load_serving
    from trainer.keras_api import tf

    served = load_serving(flowers_model)(image_bytes=tf.constant(sent))
    assert [n.decode() for n in served["class_names"].numpy()] == [r[1] for r in rows]


def test_model_and_images_from_cloud_storage(
    flowers_model: str, flower_files: list[Path], gcs_bucket: str
) -> None:
    from trainer.keras_api import tf

    model = f"{gcs_bucket}/runs/1/model"
    for folder, _, names in tf.io.gfile.walk(flowers_model):
        target = model + folder[len(flowers_model) :]
        tf.io.gfile.makedirs(target)
        for name in names:
            tf.io.gfile.copy(f"{folder}/{name}", f"{target}/{name}")
    image = f"{gcs_bucket}/images/rose.jpg"
    tf.io.gfile.copy(str(flower_files[0]), image)
    out = f"{gcs_bucket}/requests/instances.json"
    # In a process of its own, as users run it: the emulator's proxy is a thread of this
    # process, and a SavedModel restore holds the interpreter while it reads.
    done = subprocess.run(
        [sys.executable, "-m", "trainer.predict", model, image, "--instances-out", out],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert printed_rows(done.stdout)[0][0] == image
    body = json.loads(tf.io.gfile.GFile(out).read())
    sent = base64.b64decode(body["instances"][0]["image_bytes"]["b64"])
    assert sent == flower_files[0].read_bytes()


# ---------------------------------------------------------------- bad input


def test_missing_model_dir_is_one_line_naming_it(
    flower_files: list[Path], tmp_path: Path, capsys
) -> None:
    missing = tmp_path / "no-model"
    assert predict.main([str(missing), str(flower_files[0]), "--instances-out", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(missing) in err and err.startswith("trainer.predict: error")


def test_unreadable_or_missing_image_is_one_line_naming_it(
    flowers_model: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the default instances.json would go
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert predict.main([flowers_model, str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"trainer.predict: error: cannot read image file {bad}: not a PNG or JPEG image"
    missing = tmp_path / "gone.jpg"
    assert predict.main([flowers_model, str(missing)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"image file not found: {missing}")
    assert not (tmp_path / "instances.json").exists()


def test_corrupt_model_is_one_line_naming_it(flower_files: list[Path], tmp_path: Path, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"not a SavedModel")
    args = [str(tmp_path / "model"), str(flower_files[0]), "--instances-out", ""]
    assert predict.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"trainer.predict: error: cannot load the model in {tmp_path / 'model'}")
    assert "\n" not in err


def test_request_bodies_over_vertex_limits_are_warned_about(tmp_path: Path) -> None:
    small = predict.instances_body("image_bytes", [b"x"] * 3)
    assert predict.write_instances(str(tmp_path / "small.json"), small) == []
    many = predict.instances_body("image_bytes", [b"x"] * 101)
    assert "first 100" in predict.write_instances(str(tmp_path / "many.json"), many)[0]
    large = predict.instances_body("image_bytes", [bytes(1_200_000)])
    assert "1.5 MB" in predict.write_instances(str(tmp_path / "large.json"), large)[0]
    assert json.loads((tmp_path / "small.json").read_text()) == small


def test_help_answers_without_tensorflow() -> None:
    code = (
        "import sys\nfrom trainer.predict import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--instances-out" in out.stdout and out.stdout.strip().endswith("False")
