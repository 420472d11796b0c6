"""Export: a SavedModel for Vertex prediction, published at the model dir only when complete.

The `serving_default` signature takes raw inputs and returns
  class_ids      int64 [batch]
  class_names    string [batch]
  probabilities  float32 [batch, classes]
Inputs: `pixels` (float32 [batch, 28, 28], values 0-255) for MNIST; `image_bytes` (JPEG or
PNG bytes [batch]) for flowers, the name Vertex's base64 convention expects ({"b64": ...}).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from trainer.datasets import DatasetSpec
from trainer.images import decode_to_square
from trainer.keras_api import tf

SIGNATURE = "serving_default"


def serving_function(model: Any, spec: DatasetSpec, image_size: int) -> Any:
    """The serving tf.function: raw input in, class ids, names and probabilities out."""
    names = tf.constant(list(spec.class_names))

    def outputs(images: Any) -> dict[str, Any]:
        probabilities = tf.cast(model(images, training=False), tf.float32)
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            "class_ids": class_ids,
            "class_names": tf.gather(names, class_ids),
            "probabilities": probabilities,
        }

    if spec.serving_input == "pixels":
        signature = tf.TensorSpec([None, image_size, image_size], tf.float32, name="pixels")

        @tf.function(input_signature=[signature])
        def serve_pixels(pixels: Any) -> dict[str, Any]:
            return outputs(tf.expand_dims(pixels, -1))

        return serve_pixels

    signature = tf.TensorSpec([None], tf.string, name="image_bytes")
    image_spec = tf.TensorSpec([image_size, image_size, spec.channels], tf.float32)

    @tf.function(input_signature=[signature])
    def serve_image_bytes(image_bytes: Any) -> dict[str, Any]:
        images = tf.map_fn(
            lambda b: tf.cast(decode_to_square(b, image_size, spec.channels), tf.float32),
            image_bytes,
            fn_output_signature=image_spec,
        )
        return outputs(images)

    return serve_image_bytes


def save_model(
    model: Any, spec: DatasetSpec, image_size: int, path: str, io_device: str | None = None
) -> None:
    """Write the SavedModel (variables and serving signature only) to path."""
    module = tf.Module()
    module.model_variables = list(model.variables)
    module.serve = serving_function(model, spec, image_size)
    options = tf.saved_model.SaveOptions(experimental_io_device=io_device)
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve}, options=options)


def staging_dir(final_dir: str) -> str:
    """A fresh sibling of final_dir to build the export in."""
    return f"{final_dir.rstrip('/')}.partial-{uuid.uuid4().hex[:8]}"


def write_files(folder: str, files: Mapping[str, bytes]) -> None:
    for name, content in files.items():
        with tf.io.gfile.GFile(f"{folder.rstrip('/')}/{name}", "wb") as f:
            f.write(content)


def publish(staged: str, final_dir: str) -> None:
    """Move a complete export into place; an earlier model there is replaced, not mixed."""
    final_dir = final_dir.rstrip("/")
    old = None
    if tf.io.gfile.exists(final_dir):
        if tf.io.gfile.isdir(final_dir) and not tf.io.gfile.listdir(final_dir):
            tf.io.gfile.rmtree(final_dir)
        else:
            old = f"{final_dir}.old-{uuid.uuid4().hex[:8]}"
            move_folder(final_dir, old)
    parent = final_dir.rsplit("/", 1)[0] if "/" in final_dir else ""
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    move_folder(staged, final_dir)
    if old:
        remove_tree(old)


def move_folder(src: str, dst: str) -> None:
    """Rename a folder: in one step where the filesystem can, object by object on gs://.

    Cloud Storage has no folder rename: TensorFlow copies and deletes each object, and when a
    transient error interrupts that, its retry can take the half-moved folder for an object
    and fail with 404. Moved one object per call, a retry repeats only that object's copy.
    """
    if not src.startswith("gs://"):
        tf.io.gfile.rename(src, dst)
        return
    src = src.rstrip("/")
    for folder, _, files in list(tf.io.gfile.walk(src)):
        target = dst.rstrip("/") + folder.rstrip("/")[len(src) :]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.rename(f"{folder.rstrip('/')}/{name}", f"{target}/{name}")
    remove_tree(src)


def remove_tree(path: str, attempts: int = 5) -> None:
    """rmtree that outlasts a false NotFound from gs://.

    TensorFlow's gs:// rmtree reports a transient error of its "is this a folder?" check as
    NotFound, which it does not retry: try again while the folder is still there.
    """
    for attempt in range(attempts):
        try:
            tf.io.gfile.rmtree(path)
            return
        except tf.errors.NotFoundError:
            if not tf.io.gfile.exists(path):
                return  # gone: what was asked
            if attempt == attempts - 1:
                raise


def remove_quietly(path: str) -> None:
    """Delete a staging folder left by a failed export."""
    try:
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
    except tf.errors.OpError:
        pass


def load_serving(path: str) -> Any:
    """The serving signature of an exported model (local or gs://)."""
    return tf.saved_model.load(path).signatures[SIGNATURE]
