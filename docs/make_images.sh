#!/usr/bin/env bash
# Draws every picture in docs/images/ with the README's commands, from the repository root:
#   bash docs/make_images.sh            # all of them (about 10 minutes on 2 cores)
#   bash docs/make_images.sh slice bn   # only those whose file name starts with one of these words
set -euo pipefail
cd "$(dirname "$0")/.."
splinetool=${SPLINETOOL:-splinetool}
images=docs/images
digits="--data sample_models/data/digits.npz"
wanted=("$@")

draw() {  # draw FILE.png FLAG COMMAND ARGS...: the command, writing FILE with FLAG (--png, --tessellation)
    local file=$1 flag=$2
    shift 2
    if ((${#wanted[@]})); then
        local word keep=0
        for word in "${wanted[@]}"; do [[ $file == "$word"* ]] && keep=1; done
        ((keep)) || return 0
    fi
    echo "== $file"
    "$splinetool" "$@" "$flag" "$images/$file" --quiet
}

draw slice-moons-mlp.png --png slice sample_models/moons-mlp.ts.pt --data sample_models/data/moons.npz
draw slice-moons-mlp-layers.png --png slice sample_models/moons-mlp.ts.pt --data sample_models/data/moons.npz \
    --color layer
draw slice-digits-mlp.png --png slice sample_models/digits-mlp.ts.pt $digits --split train --anchor-index 0,1,2
draw slice-trajectory-digits.png --png slice 'sample_models/digits-mlp-trajectory/step-*.ts.pt' $digits \
    --split train --anchor-index 0,1,2
draw count-regions-digits.png --png count-regions sample_models/digits-mlp.ts.pt $digits --split train \
    --pairs random:1000
draw count-regions-sweep.png --png count-regions --sweep configs/sweeps/depth-vs-width.toml
draw local-complexity-digits-mlp.png --png local-complexity sample_models/digits-mlp.ts.pt $digits \
    --split train,test --random 1000
draw local-complexity-trajectory.png --png local-complexity 'sample_models/digits-mlp-trajectory/step-*.ts.pt' \
    $digits --split train,test --random 1000
draw bn-density-paper.png --png bn-density --config configs/bn-density/paper.toml
draw bn-density-tessellation.png --tessellation bn-density --config configs/bn-density/small.toml
draw condition-digits.png --png condition sample_models/digits-convnet.ts.pt sample_models/digits-resnet.ts.pt \
    $digits --split test --block-points 100
draw debias-sample-gmm-wgan.png --png debias-sample sample_models/gmm-wgan.ts.pt --rho -1 --rho 0 --rho 1
draw debias-sample-digits-decoder.png --png debias-sample sample_models/digits-decoder.ts.pt --output-shape 1,8,8 \
    --n 64 --pool 20000 --rho -2 --rho 0 --rho 2
