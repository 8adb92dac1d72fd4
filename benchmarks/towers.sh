#!/usr/bin/env bash
# The runs behind docs/towers.md: per tower, CBNS (batch B, bank M) against in-batch at batch B
# and in-batch at batch B + M (the same number of negatives per row). One run at a time, one
# thread; a run whose metrics.json exists is skipped. Usage: bash benchmarks/towers.sh [OUT_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/towers}
DATA=${DATA:-../shared/data}
ML="$DATA/ml-100k"
BEAUTY="$DATA/amazon-seq/Beauty.txt"
# dim 64 and lr 5e-3 pinned: the runs in docs/towers.md were made with them.
COMMON="--split loo --threads 1 --no-progress --patience 3 --dim 64 --lr 0.005 --lr-schedule constant --popularity-prior off --item-bias false"

run() {  # run NAME FLAGS...
  local name=$1; shift
  [ -f "$OUT/$name/metrics.json" ] && { echo "skip $name"; return; }
  echo "== $name: cbns train $*"
  python -m cbns train --item-side split "$@" $COMMON --out "$OUT/$name" | tail -3
}

trio() {  # trio PREFIX B M FLAGS...: cbns at (B, M), inbatch at B, inbatch at B + M
  local prefix=$1 b=$2 m=$3; shift 3
  run "$prefix-cbns-b$b-m$m" "$@" --sampler cbns --batch-size "$b" --memory-size "$m"
  run "$prefix-inbatch-b$b" "$@" --sampler inbatch --batch-size "$b"
  run "$prefix-inbatch-b$((b + m))" "$@" --sampler inbatch --batch-size "$((b + m))"
}

# MovieLens-100k (943 users, 1,682 items, 98k train events): pooled history + user attributes,
# item attributes. 943 test users: three seeds per setting.
ML_FLAGS="--data $ML --epochs 30"
for seed in 0 1 2; do
  s=$([ "$seed" = 0 ] && echo "" || echo "-s$seed")
  trio "ml-id-id$s" 256 1024 $ML_FLAGS --seed "$seed" --user-tower id --item-tower id
  trio "ml-id-features$s" 256 1024 $ML_FLAGS --seed "$seed" --user-tower id --item-tower features
  trio "ml-pooled-features$s" 256 1024 $ML_FLAGS --seed "$seed" --user-tower pooled --item-tower features
done

# Amazon Beauty (22,363 users, 12,101 items, 154k train events): GRU over the history.
B_FLAGS="--data $BEAUTY --max-history 20 --hidden-dim 64"   # the history tower's options: not for id-id
trio beauty-id-id 256 1024 --data "$BEAUTY" --epochs 40 --user-tower id --item-tower id
for seed in 0 1 2; do
  s=$([ "$seed" = 0 ] && echo "" || echo "-s$seed")
  trio "beauty-gru-id$s" 256 1024 $B_FLAGS --epochs 15 --seed "$seed" --user-tower gru --item-tower id
done
trio beauty-gru-features 256 1024 $B_FLAGS --epochs 15 --user-tower gru --item-tower features

# The bank's gradient convention (joint: bank rows in the item tower's softmax too) and the
# streaming frequency estimate, on the expensive-tower settings.
run ml-pooled-features-cbns-joint-b256-m1024 $ML_FLAGS --user-tower pooled --item-tower features \
  --sampler cbns --batch-size 256 --memory-size 1024 --item-side joint
run beauty-gru-features-cbns-joint-b256-m1024 $B_FLAGS --epochs 15 --user-tower gru --item-tower features \
  --sampler cbns --batch-size 256 --memory-size 1024 --item-side joint
run beauty-gru-id-cbns-joint-b256-m1024 $B_FLAGS --epochs 15 --user-tower gru --item-tower id \
  --sampler cbns --batch-size 256 --memory-size 1024 --item-side joint
run ml-pooled-features-cbns-streaming-b256-m1024 $ML_FLAGS --user-tower pooled --item-tower features \
  --sampler cbns --batch-size 256 --memory-size 1024 --item-frequency streaming
run beauty-gru-id-cbns-streaming-b256-m1024 $B_FLAGS --epochs 15 --user-tower gru --item-tower id \
  --sampler cbns --batch-size 256 --memory-size 1024 --item-frequency streaming

python benchmarks/towers_table.py "$OUT"/*/
