#!/usr/bin/env bash
# Train the checkpoint for large label sets (docs/large-label-sets.md, "Training on other
# relations"): the RE-Matching model fine-tuned on FewRel val_nyt's sentences of the 17
# relations that are not val_wiki relations, described by Wikidata's "label: description",
# with every other Wikidata property (not held out) as an extra candidate negative; trained
# twice for 6 epochs (seeds 42 and 43) and the two runs' weights averaged (a model soup); the checkpoint
# scores as an ensemble with the zero-training default of weight 0.3.
#
# val_wiki's 16 relations are held out (never trained on, never a negative), so the
# checkpoint can be measured on val_wiki as a model that saw none of its relations.
#
# Usage: scripts/train-scale.sh OUTPUT_DIR [DATA_DIR]   (DATA_DIR default: ../shared/data)
# Then, e.g.:
#   rmx index build --model OUTPUT_DIR DATA_DIR/wikidata/all_wikidata_properties.json -o wikidata-trained.rmx
#   rmx eval --model OUTPUT_DIR --index wikidata-trained.rmx --data DATA_DIR/fewrel/val_wiki.json --sentences 0..50
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 OUTPUT_DIR [DATA_DIR]" >&2
    exit 2
fi
OUT="$1"
DATA="${2:-../shared/data}"
RMX="${RMX:-rmx}"
VAL_WIKI_RELATIONS="P155,P177,P206,P2094,P25,P26,P361,P364,P40,P410,P412,P413,P463,P59,P641,P921"

"$RMX" train \
    --data "$DATA/fewrel/val_nyt.json" \
    --descriptions "$DATA/wikidata/all_wikidata_properties.json" \
    --unseen "$VAL_WIKI_RELATIONS" \
    --zero-shot-weight 0.3 \
    --epochs 6 \
    --seed 42,43 \
    -o "$OUT"
