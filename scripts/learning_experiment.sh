#!/usr/bin/env bash
# The "model must learn" experiment: clip-hand3d-tiny on the built-in synthetic hands, 15 minutes of training on
# this machine's CPU for the full model and for each of the paper's table-3 ablations, then a summary in docs/.
#     bash scripts/learning_experiment.sh [OUTPUT_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-outputs/learning}
for ablation in none no_clip no_feature_projection no_sparse_to_dense; do
    python train.py --recipe recipes/synthetic_tiny_15min.json --ablation "$ablation" --output_dir "$root/$ablation"
done
python scripts/summarize_learning.py "$root" docs
