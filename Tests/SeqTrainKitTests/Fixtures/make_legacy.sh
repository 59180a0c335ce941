#!/usr/bin/env bash
# Checkpoints of every kind made by an older seqtrain (the committed ones: commit 8160875, before
# layer stacks), with the data they are evaluated on and what that seqtrain's `eval --json` printed.
# LegacyCheckpointTests loads them with today's seqtrain and expects the same figures.
#
#   Tests/SeqTrainKitTests/Fixtures/make_legacy.sh OLD_SEQTRAIN_BINARY
set -euo pipefail
bin="$(realpath "$1")"
out="${LEGACY_OUT:-$(cd "$(dirname "$0")" && pwd)/legacy}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
cd "$work"
"$bin" data curves --out curves --count 48 --length 20 --seed 3 --variable-length >/dev/null
"$bin" data letters --out letters --count 60 --seed 4 >/dev/null
"$bin" data series --out series --length 240 --features 2 --season 12 --seed 5 >/dev/null
python3 - <<'PY'
import random
random.seed(7)
words = ["".join(random.choice("abcdefgh") for _ in range(random.randint(3, 7))) for _ in range(150)]
open("words.txt", "w").write("\n".join(words) + "\n")
open("text.txt", "w").write(" ".join(words) * 3 + "\n")
PY
cat > base.toml <<'TOML'
[job]
seed = 6
[training]
batch_size = 8
max_steps = 12
epochs = 50
eval_every = 12
[optimizer]
lr = 0.01
[checkpoint]
interval = 12
TOML
train() {  # name, data copied to the fixtures, eval arguments, --set overrides...
  local name="$1" data="$2" evalargs="$3"; shift 3
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  "$bin" train base.toml --quiet --no-doctor --set "job.run_dir=run-$name" "${sets[@]}" >/dev/null
  cp "$(ls run-"$name"/checkpoints/step-*[0-9].safetensors | sort | tail -1)" "$out/$name.safetensors"
  for f in $data; do cp "$f" "$out/$name.$(basename "$f")"; done
  # eval arguments name the copied data as NAME.FILE, relative to the fixtures folder
  echo "$evalargs" > "$out/$name.eval.args"
  (cd "$out" && "$bin" eval "$name.safetensors" $evalargs --json > "$name.eval.json")
}
train char_lm text.txt "--data char_lm.text.txt" model.kind=char_lm data.paths=text.txt model.hidden=12 \
  model.embedding=6 training.seq_len=16 model.layers=2
train sequence_classifier "curves/inputs.npy curves/labels.npy" \
  "--data sequence_classifier.inputs.npy --labels sequence_classifier.labels.npy" \
  model.kind=sequence_classifier data.inputs=curves/inputs.npy data.labels=curves/labels.npy model.cell=gru \
  model.hidden=8 model.layers=2 model.pooling=mean
train mlp_classifier "letters/images.npy letters/labels.csv" \
  "--data mlp_classifier.images.npy --labels mlp_classifier.labels.csv" \
  model.kind=mlp_classifier data.inputs=letters/images.npy data.labels=letters/labels.csv 'model.hidden_sizes=[16]'
train autoencoder curves/inputs.npy "--data autoencoder.inputs.npy" \
  model.kind=autoencoder data.inputs=curves/inputs.npy model.hidden=8 model.latent=3 model.layers=2
train autoencoder_previous curves/inputs.npy "--data autoencoder_previous.inputs.npy" \
  model.kind=autoencoder data.inputs=curves/inputs.npy model.cell=gru model.hidden=8 model.latent=3 \
  model.decoder_input=previous_output
train seq2seq words.txt "--data seq2seq.words.txt" model.kind=seq2seq data.paths=words.txt model.hidden=10 \
  model.embedding=6
train forecaster series/series.npy "--data forecaster.series.npy" model.kind=forecaster \
  data.inputs=series/series.npy model.hidden=8 model.horizon=3 training.look_back=24
ls -la "$out"
