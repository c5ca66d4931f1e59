#!/usr/bin/env bash
# The three datasets of a GPU training run (Scripts/train_tiny_gpu.sh), rendered by the release
# build and packed as DIR/single.tar.xz, DIR/multi.tar.xz, DIR/ground.tar.xz (26 MB in all, small
# enough to carry to the device machine; the rendered folders are 1.7 GB).
#
#   Scripts/make_gpu_data.sh DIR [SINGLE MULTI GROUND]     # clip counts, default 7000 6000 4000
#
# The same flags and seeds as Models/README.md; a finished archive is left as it is, an
# unfinished one (interrupted) is written again.
set -euo pipefail
if [ $# -ne 1 ] && [ $# -ne 4 ]; then
    echo "usage: $0 DIR [SINGLE MULTI GROUND]" >&2
    exit 2
fi
dir=$1
counts=("${2:-7000}" "${3:-6000}" "${4:-4000}")
cd "$(dirname "$0")/.."
lvd=.build/release/lvd
[ -x "$lvd" ] || { echo "$lvd is missing: run swift build -c release first" >&2; exit 1; }
mkdir -p "$dir"
render=$(mktemp -d "$dir/.render.XXXXXX")
trap 'rm -rf "$render" "$dir"/.*.tar.xz.partial' EXIT
sets=(single multi ground)
flags=("--max-objects 1 --min-sprite 20 --max-sprite 28"
       "--max-objects 4 --min-sprite 20 --max-sprite 28 --seed 1000000"
       "--max-objects 4 --min-sprite 10 --max-sprite 30 --seed 2000000")
for i in 0 1 2; do
    set=${sets[$i]}
    if [ -f "$dir/$set.tar.xz" ]; then
        echo "$dir/$set.tar.xz is there"
        continue
    fi
    # shellcheck disable=SC2086  # the flags are words
    "$lvd" world dataset --count "${counts[$i]}" ${flags[$i]} --shard-size 1000 -o "$render/$set" >/dev/null
    tar -C "$render" -cf - "$set" | xz -T0 -6 >"$dir/.$set.tar.xz.partial"
    mv "$dir/.$set.tar.xz.partial" "$dir/$set.tar.xz"
    rm -rf "${render:?}/$set"
    echo "$dir/$set.tar.xz: ${counts[$i]} clips, $(du -h "$dir/$set.tar.xz" | cut -f1)"
done
