#!/usr/bin/env bash
# One GPU run of the tiny model's training, bounded in time, from rendered data to exported folders.
#
#   Scripts/train_tiny_gpu.sh DATA WORK OUT SECONDS
#
# DATA holds the three `lvd world dataset` folders of Models/README.md (single/, multi/, ground/),
# or them as single.tar.xz, multi.tar.xz, ground.tar.xz. The tokenizer and the VAE are the bundled
# ones (Models/tiny, through `train_tiny.py import`). START=bundled (the default) goes on from the
# bundled UNet, text encoder and GLIGEN adapters (steps 8000 and 1906); START=scratch starts the
# UNet and text encoder afresh (the first GPU run did: 490 steps drew confetti). Two
# variants train side by side on the one GPU (a hedge: which one grounds better is not known yet):
#
#   F  the base UNet alone, then the GLIGEN adapters on the frozen base (as before);
#   J  the base UNet and the GLIGEN adapters together (--joint-gligen 0.5).
#
# Both stop in time for everything to be exported by SECONDS after the start. OUT gets per variant
# V: V.log, V-tiny.tar.gz and V-tiny-gligen.tar.gz (the folders as `export` writes them), and
# profile.log (`train_tiny.py profile`: where a step's time goes).
set -uo pipefail
if [ $# -ne 4 ]; then
    echo "usage: $0 DATA WORK OUT SECONDS" >&2
    exit 2
fi
data=$1 work=$2 out=$3 budget=$4
start=$(date +%s)
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
mkdir -p "$work" "$out"
batches="--image-batch ${IMAGE_BATCH:-512} --video-batch ${VIDEO_BATCH:-64}"
# Where a step's time goes on this device, while the data unpacks (the first GPU run here made
# 1.5–2.8 steps a second at these batches, far below what the GPU can do: the next run needs to know why).
$py Scripts/train_tiny.py profile --work "$work/profile" $batches >"$out/profile.log" 2>&1 &

for set in single multi ground; do
    if [ -d "$data/$set" ]; then
        ln -sfn "$(cd "$data/$set" && pwd)" "$work/$set"
    elif [ -f "$data/$set.tar.xz" ]; then
        tar -xJf "$data/$set.tar.xz" -C "$work" &
    else
        echo "$data has neither $set/ nor $set.tar.xz" >&2
        exit 1
    fi
done
wait
D="--data $work/single $work/multi $work/ground"
base=$work/base
start_from=${START:-bundled}
case $start_from in
    bundled) $py Scripts/train_tiny.py import $D --work "$base" --out Models --import-step 8000 1906 || exit 1 ;;
    scratch) $py Scripts/train_tiny.py import $D --work "$base" --out Models --import-step 0 0 || exit 1
             rm -f "$base/unet.pt" "$base/gligen.pt" ;;
    *) echo "START is bundled or scratch, not $start_from" >&2; exit 2 ;;
esac
$py Scripts/train_tiny.py latents $D --work "$base" --flip || exit 1
echo "setup took $(( $(date +%s) - start )) s"

# Minutes left before SECONDS, keeping $1 seconds for what comes after (a stage's start-up, the export).
# IMAGE_BATCH and VIDEO_BATCH set the batches (512 frames, 64 clips: sized for a GPU); PRECISION
# (fp32 or bf16) the UNet's forward, as profile.log shows faster.
minutes_left() { awk -v now="$(date +%s)" -v end=$((start + budget - $1)) 'BEGIN { printf "%.2f", (end - now) / 60 }'; }
# A lower rate going on from the bundled checkpoint than from scratch (LR overrides either).
lr=${LR:-$([ "$start_from" = bundled ] && echo 3e-4 || echo 6e-4)}
common="$batches --precision ${PRECISION:-fp32} --lr $lr --token-loss 0.05 --phrase-loss 0.01 --schedule-by-time --unet-steps 1000000"
params='{"lvd": {"loss_threshold": 0, "loss_scale": 20}}'

run_variant() {
    local v=$1
    shift
    mkdir -p "$work/$v"
    ln -sfn "$base/latents.pt" "$work/$v/latents.pt"
    ln -sfn "$base/tokenizer" "$work/$v/tokenizer"
    ln -sfn "$base/vae.pt" "$work/$v/vae.pt"
    # Imported checkpoints are copied: each variant rewrites its own.
    for ckpt in unet.pt gligen.pt; do
        [ -f "$base/$ckpt" ] && cp "$base/$ckpt" "$work/$v/$ckpt"
    done
    "$@"
    $py Scripts/train_tiny.py export $D --work "$work/$v" --out "$work/$v/export" --method-params "$params" &&
        tar -C "$work/$v/export" -czf "$out/$v-tiny.tar.gz" tiny &&
        tar -C "$work/$v/export" -czf "$out/$v-tiny-gligen.tar.gz" tiny-gligen
}

variant_f() {
    $py Scripts/train_tiny.py unet $D --work "$work/F" --unet-data "$work/single" "$work/multi" $common \
        --image-fraction 0.48 --minutes "$(awk -v m="$(minutes_left 60)" 'BEGIN { printf "%.2f", m * 0.6 }')"
    $py Scripts/train_tiny.py gligen $D --work "$work/F" --gligen-data "$work/multi" "$work/ground" \
        --gligen-steps 1000000 $batches --precision ${PRECISION:-fp32} --lr $lr --minutes "$(minutes_left 60)"
}

variant_j() {
    $py Scripts/train_tiny.py unet $D --work "$work/J" $common --image-fraction 0.48 --joint-gligen 0.5 \
        --minutes "$(minutes_left 60)"
}

run_variant F variant_f >"$out/F.log" 2>&1 &
run_variant J variant_j >"$out/J.log" 2>&1 &
wait
echo "done in $(( $(date +%s) - start )) s"
ls -la "$out"
