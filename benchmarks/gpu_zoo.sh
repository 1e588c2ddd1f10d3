#!/usr/bin/env bash
# A zoo family trained on a lent GPU in one device call, packaged back here (README, "Training on
# a GPU"). The device machine has torch but not FrEIA and no network, takes at most 64 MiB of
# working tree, and gives back at most 8 files of 16 MiB; a session has 15 minutes of it in all.
#
#   bash benchmarks/gpu_zoo.sh prepare [ARCHIVE]   # here: FrEIA's wheel in .whl/, the CIFAR-10
#                                                  # archive in .carry/, the family's shipped weights
#                                                  # out of the tree (git restores them)
#   bash benchmarks/gpu_zoo.sh train MINUTES       # there, with .whl and .carry carried: every model
#                                                  # of the family at once, MINUTES of wall clock each
#   bash benchmarks/gpu_zoo.sh finish DIR MINUTES  # here: the runs from DIR (the call's files),
#                                                  # evaluated and packaged into pretrained/
#
# The models train side by side, one process each (small models leave a GPU mostly idle), under
# `ibinn zoo rebuild --train-only`: each process takes the next model no other process holds. A
# model that misses the call's time limit leaves the family incomplete, and the zoo unchanged.
# FAMILY (default cifar10) and DEVICE (default cuda) choose another family or device, e.g. for a
# rehearsal on the CPU: FAMILY=fashion-mnist DEVICE=cpu OUT=/tmp/out bash benchmarks/gpu_zoo.sh train 0.1
set -euo pipefail
cd "$(dirname "$0")/.."
family=${FAMILY:-cifar10}
device=${DEVICE:-cuda}
work=runs/zoo-gpu-$family

rebuild() {  # the one rebuild command of both ends: the same plans, so `finish` finds the runs
  python3 -m ibinn zoo rebuild --dataset "$family" --device "$device" --budget-minutes "$1" \
    --work "$work" "${@:2}"
}

case "${1:-}" in
prepare)
  mkdir -p .whl .carry
  python3 -m pip download -q --no-deps -d .carry FrEIA==0.2
  python3 -m pip wheel -q --no-deps -w .whl .carry/FrEIA-0.2.tar.gz
  rm .carry/FrEIA-0.2.tar.gz
  cp "${2:-../shared/data/cifar10-jpeg.tar.gz}" .carry/cifar10-jpeg.tar.gz
  rm -f pretrained/"$family"/*/model.safetensors
  echo "ready: run 'bash benchmarks/gpu_zoo.sh train MINUTES' there with carry .whl .carry"
  ;;
train)
  minutes=${2:?minutes of training a model}
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  if [ -f .carry/cifar10-jpeg.tar.gz ]; then  # unpacked and decoded once, not by every process
    mkdir -p data/cifar10-jpeg && tar xzf .carry/cifar10-jpeg.tar.gz -C data/cifar10-jpeg
    python3 -c "from ibinn.data import load_dataset as L; [L('imagefolder:data/cifar10-jpeg', s) for s in ('train', 'test')]"
  fi
  mkdir -p "$work"
  models=$(find pretrained/"$family" -name card.json | wc -l)
  threads=$(( $(nproc) / models > 0 ? $(nproc) / models : 1 ))
  for i in $(seq "$models"); do
    # --max-minutes: a run that overruns stops with time left to send the others back
    OMP_NUM_THREADS=$threads rebuild "$minutes" --train-only --max-minutes "$(awk "BEGIN {print $minutes + 3}")" \
      > "$work/process-$i.log" 2>&1 &
    sleep 1  # each process finds the folders its elders hold
  done
  wait || true  # a process that found every model taken exits 3
  tail -n 3 "$work"/process-*.log
  runs=$(find "$work" -path '*/run/metrics.json' -printf '%h\n')
  echo "trained: $(echo "$runs" | grep -c run) of $models models"
  tar czf - $(for run in $runs; do echo "$run"/{model.safetensors,metrics.json,train_config.json}; done) \
    "$work"/process-*.log | split -b 15m - "${OUT:?the folder whose files come back}/runs.tgz."
  ;;
finish)
  dir=${2:?the folder holding the runs.tgz.* files of the call}
  git checkout -- pretrained/"$family"
  cat "$dir"/runs.tgz.* | tar xzf -
  rebuild "${3:?the MINUTES the runs trained for}"
  ;;
*)
  sed -n '2,18p' "$0"
  exit 2
  ;;
esac
