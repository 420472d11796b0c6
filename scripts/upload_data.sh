#!/usr/bin/env bash
# Usage: scripts/upload_data.sh --bucket B --dataset mnist|flowers
#                               [--from SRC | --convert SRC | --synthetic] [--dry-run]
# Put a dataset where the job specs read it: gs://B/data/DATASET/.
#   (default)      copy the public data: MNIST's four IDX files from gs://mnist-public, the
#                  flowers TFRecords from gs://flowers-public/tfrecords-jpeg-192x192-2
#   --from SRC     copy a gs:// folder, or upload the files of a local folder (checksums
#                  verified, python -m trainer.staging)
#   --convert SRC  convert into TFRecord shards (python -m trainer.convert): flowers from a
#                  folder with one subfolder of images per class, MNIST from its IDX files
#   --synthetic    write the generated smoke dataset there (for a first, cheap job)
# --dry-run prints every command without running it.
set -euo pipefail
# shellcheck source=scripts/_common.sh
source "$(dirname "$0")/_common.sh"

MNIST_FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte
  t10k-labels-idx1-ubyte)
FLOWERS_PUBLIC="gs://flowers-public/tfrecords-jpeg-192x192-2"

bucket="" dataset="" mode="public" source=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --bucket) need_value "$@"; bucket="${2#gs://}"; bucket="${bucket%/}"; shift 2 ;;
    --dataset) need_value "$@"; dataset="$2"; shift 2 ;;
    --from) need_value "$@"; mode="from"; source="${2%/}"; shift 2 ;;
    --convert) need_value "$@"; mode="convert"; source="${2%/}"; shift 2 ;;
    --synthetic) mode="synthetic"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$bucket" ] || die "--bucket is required"
case "$dataset" in
  mnist | flowers) ;;
  "") die "--dataset is required (mnist or flowers)" ;;
  *) die "--dataset must be mnist or flowers, not $dataset" ;;
esac
dest="gs://$bucket/data/$dataset"

case "$mode" in
  public)
    if [ "$dataset" = mnist ]; then
      # Named one by one: copying needs no permission to list the public bucket.
      run gcloud storage cp "${MNIST_FILES[@]/#/gs://mnist-public/}" "$dest/"
    else
      run gcloud storage cp "$FLOWERS_PUBLIC/*.tfrec" "$dest/"
    fi
    ;;
  from)
    if [ "${source#gs://}" != "$source" ]; then
      run gcloud storage cp "$source/*" "$dest/"
    else
      [ -d "$source" ] || die "--from $source is not a folder"
      files=()
      for f in "$source"/*; do
        if [ -f "$f" ]; then files+=("$f"); fi
      done
      [ "${#files[@]}" -gt 0 ] || die "--from $source has no files"
      use_python
      run "$PY" -m trainer.staging "${files[@]}" "$dest/"
    fi
    ;;
  convert)
    use_python
    if [ "$dataset" = mnist ]; then
      run "$PY" -m trainer.convert mnist-idx "$source" "$dest"
    else
      run "$PY" -m trainer.convert image-folder "$source" "$dest"
    fi
    ;;
  synthetic)
    use_python
    run "$PY" -m trainer.convert synthetic "$dataset" "$dest"
    ;;
esac
echo "DATA_DIR=$dest"
