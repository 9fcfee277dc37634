#!/usr/bin/env bash
# After `nic export CHECKPOINT -o models` ships a new model, refresh everything that is tied to it:
#   0. the legacy fixtures tests/data/legacy-<new id>-d{1,2}.nic and their pixel hashes in
#      tests/data/legacy-pixels.json (checked by tests/test_legacy_models.py)
#   1. the PSNR floors of tests/test_roundtrip.py (measured, minus 0.5 dB)
#   2. the fuzz corpus in tests/corpus/ (its hostile files carry the model id)
#   3. the RD evaluations (Kodak, eval set, SGA presets) into bench/results/ and docs/rd-*.png
#   4. the decode-speed, depth-choice, browser-latency and boot-speed benchmarks (JSON under build/ and runs/)
# Usage: scripts/refresh_after_export.sh [step ...]
#   steps: fixtures floors corpus rd lanes sga sga-ab sga-kodak sga-best sga-eval speed browser (default: all)
# The RD runs pass --resume: the classical codecs' per-image results are reused (they are
# deterministic and keyed by every setting); nic's are keyed by the model files, so they rerun.
# Text in README.md and BENCHMARKS.md is still written by hand from the printed figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
NIC=.venv/bin/nic
DATA=${NIC_DATA:-../shared/data}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(fixtures floors corpus rd lanes sga sga-ab sga-kodak sga-best sga-eval speed browser)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1  # two workers on two cores, no oversubscription

reuse() {  # reuse() SRC DST: per-image results are keyed by their settings and model, so another run's apply
  mkdir -p "runs/eval/$2/parts"
  [ -d "runs/eval/$1/parts" ] && cp -rn "runs/eval/$1/parts/." "runs/eval/$2/parts/"
  return 0
}

publish() {  # runs/eval/$1 -> bench/results/$1 (the CompressAI-format JSONs and the summary)
  mkdir -p "bench/results/$1"
  cp runs/eval/"$1"/*.json runs/eval/"$1"/summary.md "bench/results/$1/"
  rm -f "bench/results/$1/per_image.json"
}

for step in "${steps[@]}"; do
  echo "== $step"
  case "$step" in
    fixtures) $PY scripts/make_legacy_fixtures.py "$DATA/kodak" ;;
    floors) $PY -m bench.psnr_floors --write ;;
    corpus) $PY -m bench.fuzz --write-corpus --budget-s 0 ;;
    rd)
      $NIC eval "$DATA/kodak" -o runs/eval/kodak --workers 2 --effort none --resume
      $NIC eval "$DATA/eval" -o runs/eval/eval --workers 2 --effort none --limit 6 --resume  # the models' history
      reuse eval eval-all  # all 20 images of the second set (its first 6 from the run above)
      $NIC eval "$DATA/eval" -o runs/eval/eval-all --workers 2 --effort none --resume
      for set in kodak eval eval-all; do publish "$set"; done
      cp runs/eval/kodak/rd.png docs/rd-kodak.png
      cp runs/eval/eval-all/rd.png docs/rd-eval.png ;;
    lanes)  # the compact rANS lane policy (browser-only deployments) against the default, same run
      reuse kodak kodak-lanes
      $NIC eval "$DATA/kodak" -o runs/eval/kodak-lanes --workers 2 --depths 2 --effort none --lanes auto compact \
        --codecs nic jpeg webp avif jxl --anchors none --resume
      publish kodak-lanes ;;
    sga)
      reuse kodak-sga-all kodak-sga  # kodim01-06's default-preset encodes, when sga-kodak ran first
      # every preset but none optimises y's rounding (encoder/rounding.py); light is that step without SGA
      $NIC eval "$DATA/kodak" -o runs/eval/kodak-sga --workers 2 --depths 1 2 --effort none light fast default \
        --qualities 0 2 4 6 --limit 6 --codecs nic jpeg webp avif jxl --resume
      publish kodak-sga ;;
    sga-ab)  # the optimised rounding's A/B: the default preset with and without it, depth 2, same run
      reuse kodak-sga kodak-sga-ab
      $NIC eval "$DATA/kodak" -o runs/eval/kodak-sga-ab --workers 2 --depths 2 --effort default default-nearest \
        --qualities 0 2 4 6 --limit 6 --codecs nic webp --anchors none --resume
      publish kodak-sga-ab ;;
    sga-kodak)  # the training issue's Must targets on all of Kodak: the default preset, both depths (~30 min;
      # kodim01-06 come from the sga step's parts, the classical codecs' from the rd step's)
      reuse kodak-sga kodak-sga-all
      reuse kodak kodak-sga-all
      $NIC eval "$DATA/kodak" -o runs/eval/kodak-sga-all --workers 2 --depths 1 2 --effort none default \
        --qualities 0 2 4 6 --codecs nic jpeg webp avif jxl --resume
      publish kodak-sga-all ;;
    sga-best)  # the slowest preset (1000 steps, ~1.5 min per Kodak image): two images, depth 2
      reuse kodak-sga kodak-sga-best
      $NIC eval "$DATA/kodak" -o runs/eval/kodak-sga-best --workers 2 --depths 2 --effort none best \
        --qualities 0 2 4 6 --limit 2 --codecs nic jpeg webp avif jxl --resume
      publish kodak-sga-best ;;
    sga-eval)  # the second set with SGA, both depths: 2 images (up to 1024x1024, ~2.7x Kodak's pixels) for time
      $NIC eval "$DATA/eval" -o runs/eval/eval-sga --workers 2 --depths 1 2 --effort none default \
        --qualities 0 2 4 6 --limit 2 --codecs nic jpeg webp avif jxl --resume
      publish eval-sga ;;
    speed)
      $PY -m bench.decode_speed "$DATA/kodak" --limit 3
      $PY -m bench.depth_choice "$DATA/kodak" --limit 6 --qualities 1 3 5 7 ;;
    browser)
      $PY -m bench.browser_latency
      $PY -m bench.cold_start --rounds 6
      node bench/boot_speed.mjs build/web 5 ;;
    *) echo "unknown step: $step" >&2; exit 2 ;;
  esac
done
