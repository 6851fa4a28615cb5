#!/usr/bin/env bash
# Few-label probes on Yelp (Shen et al.): an ELBO VAE and an MMD-VAE trained at the same budget,
# then a logistic-regression probe on μ with 10/100/1000/all labels per class, 5 seeds.
#
#   bash benchmarks/yelp_probe.sh            # writes benchmarks/results/yelp_probe.md
#
# Budget (2 CPU cores): the yelp recipes at LSTM 256/256, z = 32, 2000 steps of batch 32 on the
# shipped dev split (63k sentences, ~1 epoch); probe test set: 10,000 random test sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-2000}
SIZE="model.encoder.embed_dim=256 model.encoder.hidden_dim=256 model.decoder.embed_dim=256 model.decoder.hidden_dim=256"
COMMON="train.max_steps=$STEPS train.eval_every=1000 train.eval_batches=30 train.tensorboard=false"
out=benchmarks/results/yelp_probe.md
mkdir -p benchmarks/results
{
  echo "# Yelp few-label probe: ELBO VAE vs MMD-VAE at the same budget"
  echo
  echo "Command: \`bash benchmarks/yelp_probe.sh\` (STEPS=$STEPS). Training: recipes/yelp/{vae,mmd_vae}.yaml with"
  echo "\`$SIZE $COMMON\`. Probe: \`textvae probe RUN --dataset yelp --labels-per-class 10,100,1000,all --seeds 5 --max-test 10000\`."
  echo "Accuracy on 10,000 random Yelp test sentences, mean ± std over 5 draws of the labelled examples."
} > "$out"
for run in vae mmd_vae; do
  textvae train recipes/yelp/$run.yaml $SIZE $COMMON --output runs/yelp_$run --overwrite --no-progress \
    2>/dev/null | tail -6 > /tmp/yelp_$run.train
  textvae probe runs/yelp_$run --dataset yelp --labels-per-class 10,100,1000,all --seeds 5 --max-test 10000 \
    --output benchmarks/results/yelp_probe_$run.json --no-progress 2>/dev/null > /tmp/yelp_$run.probe
  {
    echo; echo "## $run"; echo; echo '```'; cat /tmp/yelp_$run.train; echo; cat /tmp/yelp_$run.probe; echo '```'
  } >> "$out"
done
echo "wrote $out"
