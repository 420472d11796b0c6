"""Predict image files with an exported model, and write the same request for Vertex.

    python -m trainer.predict output/model digit.png photo.jpg --instances-out instances.json

Loads the SavedModel (local or gs://), prints the class and its probability for every image
file, and writes the images as a Vertex AI online prediction request body, so a deployed
endpoint can be tested with exactly the same input:

    gcloud ai endpoints predict ENDPOINT_ID --region=REGION --json-request=instances.json

MNIST models take `pixels`: every file becomes a 28x28 grayscale digit, light on dark as in
MNIST (dark-on-light pictures are inverted), fitted into a 20x20 box and centred by its centre
of mass as MNIST's digits were. Flowers models take `image_bytes`: the JPEG or PNG file itself,
base64-encoded in the request (`{"image_bytes": {"b64": ...}}`, Vertex's convention for binary
inputs); the model decodes and resizes inside.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
from PIL import Image, UnidentifiedImageError

PROG = "trainer.predict"
BATCH = 32  # images per call of the model
MNIST_BOX = 20  # MNIST digits fill a 20x20 box inside the 28x28 image
INK_THRESHOLD = 0.2  # share of the darkest ink that counts as part of the digit
SERVED_FORMATS = ("JPEG", "PNG")  # what the serving signature's decoder is meant for
# Vertex online prediction takes request bodies up to 1.5 MB; `gcloud ai endpoints predict`
# sends at most 100 instances of a file.
VERTEX_MAX_BYTES = 1_500_000
GCLOUD_MAX_INSTANCES = 100


class PredictError(Exception):
    """Bad input: the message names the file or folder; exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Print the predicted class of image files with an exported model, and "
        "write them as a Vertex AI online prediction request (instances JSON).",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="exported model folder, local or gs://")
    p.add_argument("files", metavar="FILE", nargs="+", help="PNG or JPEG image files")
    p.add_argument(
        "--instances-out",
        default="instances.json",
        help="where to write the request body for Vertex online prediction "
        "(default: %(default)s; '' to skip)",
    )
    return p


@dataclass(frozen=True)
class ImageFile:
    path: str
    content: bytes
    image: Any  # PIL.Image.Image, fully decoded


def _read_bytes(path: str) -> bytes:
    if "://" in path:
        from trainer.keras_api import tf

        if not tf.io.gfile.exists(path):
            raise PredictError(f"image file not found: {path}")
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise PredictError(f"image file not found: {path}") from None
    except OSError as err:
        raise PredictError(f"cannot read image file {path}: {err.strerror or err}") from None


def read_image(path: str) -> ImageFile:
    """The file's bytes and decoded image; a PredictError naming the file when unreadable."""
    content = _read_bytes(path)
    try:
        image = Image.open(io.BytesIO(content))
        image.load()
    except UnidentifiedImageError:
        raise PredictError(f"cannot read image file {path}: not a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PredictError(f"cannot read image file {path}: damaged image ({err})") from None
    return ImageFile(path, content, image)


def _on_white(image: Any) -> Any:
    """Transparent pixels become white paper, so a drawn digit keeps its background."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba)
    return image


def digit_pixels(image: Any, size: int = 28) -> np.ndarray:
    """Any picture of one digit as MNIST pixels: float32 [size, size], light ink on 0, 0-255."""
    gray = np.asarray(_on_white(image).convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on light paper; MNIST is light ink on black
        gray, background = 255.0 - gray, 255.0 - background
    if gray.shape == (size, size):
        return np.round(gray)  # already MNIST-sized: leave it exactly as it is
    ink = np.clip(gray - background, 0.0, None)
    if ink.max() <= 0:
        return np.zeros((size, size), np.float32)
    ink *= 255.0 / ink.max()
    rows = np.flatnonzero(ink.max(axis=1) > INK_THRESHOLD * 255)
    cols = np.flatnonzero(ink.max(axis=0) > INK_THRESHOLD * 255)
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _centre_in_square(crop, size)


def _centre_in_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Fit crop into MNIST's box and put its centre of mass at the centre of the square."""
    box = round(size * MNIST_BOX / 28)
    scale = box / max(crop.shape)
    width = max(1, round(crop.shape[1] * scale))
    height = max(1, round(crop.shape[0] * scale))
    glyph = Image.fromarray(crop.astype(np.uint8)).resize((width, height), Image.LANCZOS)
    pixels = np.asarray(glyph, dtype=np.float32)
    total = pixels.sum() or 1.0
    cy = (pixels.sum(axis=1) * np.arange(height)).sum() / total
    cx = (pixels.sum(axis=0) * np.arange(width)).sum() / total
    top = int(np.clip(round(size / 2 - cy - 0.5), 0, size - height))
    left = int(np.clip(round(size / 2 - cx - 0.5), 0, size - width))
    out = np.zeros((size, size), np.float32)
    out[top : top + height, left : left + width] = pixels
    return np.round(np.clip(out, 0, 255))


def served_bytes(item: ImageFile) -> bytes:
    """JPEG and PNG files as they are; other formats re-encoded as PNG."""
    if item.image.format in SERVED_FORMATS:
        return item.content
    buffer = io.BytesIO()
    item.image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def instances_body(input_name: str, values: Sequence[Any]) -> dict[str, Any]:
    """The request body of Vertex online prediction for a one-input serving signature."""
    if input_name.endswith("_bytes"):
        encoded = [{"b64": base64.b64encode(v).decode("ascii")} for v in values]
        return {"instances": [{input_name: e} for e in encoded]}
    return {"instances": [{input_name: np.asarray(v, float).tolist()} for v in values]}


def load_model(model_dir: str) -> tuple[Any, str, tuple[int, ...]]:
    """The serving signature, its input name and the input's shape."""
    from trainer.export import load_serving
    from trainer.keras_api import tf

    if not tf.io.gfile.exists(f"{model_dir.rstrip('/')}/saved_model.pb"):
        raise PredictError(f"no exported model in {model_dir} (saved_model.pb not found)")
    try:
        serve = load_serving(model_dir)
    except (tf.errors.OpError, OSError, ValueError, KeyError) as err:
        detail = getattr(err, "message", None) or str(err) or type(err).__name__
        raise PredictError(f"cannot load the model in {model_dir}: {detail}") from None
    inputs = serve.structured_input_signature[1]
    if len(inputs) != 1:
        raise PredictError(f"{model_dir}: expected one serving input, found {sorted(inputs)}")
    [(name, spec)] = inputs.items()
    return serve, name, tuple(spec.shape.as_list())


def model_inputs(input_name: str, shape: Sequence[Any], images: Sequence[ImageFile]) -> list[Any]:
    """One model input per image: MNIST pixels or encoded image bytes."""
    if input_name.endswith("_bytes"):
        return [served_bytes(item) for item in images]
    size = int(shape[1] or 28)
    return [digit_pixels(item.image, size) for item in images]


def predict(serve: Any, input_name: str, values: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """Class names and the probability of each, in batches."""
    from trainer.keras_api import tf

    names: list[str] = []
    probabilities: list[float] = []
    for start in range(0, len(values), BATCH):
        chunk = values[start : start + BATCH]
        batch = tf.constant(list(chunk)) if input_name.endswith("_bytes") else np.stack(chunk)
        out = serve(**{input_name: batch})
        ids = out["class_ids"].numpy()
        names += [n.decode() for n in out["class_names"].numpy()]
        probabilities += out["probabilities"].numpy()[np.arange(len(ids)), ids].tolist()
    return names, np.asarray(probabilities)


def write_instances(path: str, body: dict[str, Any]) -> list[str]:
    """Write the request body; returns warnings about limits it would run into."""
    from trainer.keras_api import tf

    text = json.dumps(body)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)
    warnings = []
    if len(text) > VERTEX_MAX_BYTES:
        warnings.append(
            f"{path} is {len(text) / 1e6:.1f} MB, over the 1.5 MB Vertex online prediction "
            "takes in one request; split the files over several requests"
        )
    if len(body["instances"]) > GCLOUD_MAX_INSTANCES:
        warnings.append(
            f"{path} holds {len(body['instances'])} instances; gcloud ai endpoints predict "
            f"sends only the first {GCLOUD_MAX_INSTANCES}"
        )
    return warnings


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: error: {message.strip().splitlines()[0]}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        images = [read_image(path) for path in args.files]
        serve, input_name, shape = load_model(args.model_dir)
        values = model_inputs(input_name, shape, images)
    except PredictError as err:
        return _fail(2, str(err))
    from trainer.keras_api import tf

    try:
        names, probabilities = predict(serve, input_name, values)
        warnings = []
        if args.instances_out:
            body = instances_body(input_name, values)
            warnings = write_instances(args.instances_out, body)
    except tf.errors.OpError as err:
        return _fail(1, f"{type(err).__name__}: {err.message}")
    width = max(len("FILE"), *(len(p) for p in args.files))
    print(f"{'FILE':<{width}}  {'CLASS':<12} PROBABILITY")
    for path, name, probability in zip(args.files, names, probabilities, strict=True):
        print(f"{path:<{width}}  {name:<12} {probability:.3f}")
    if args.instances_out:
        print(
            f"wrote {len(values)} instance(s) of '{input_name}' for Vertex online prediction "
            f"to {args.instances_out}",
            file=sys.stderr,
        )
    for warning in warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
