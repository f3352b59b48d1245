# Retrain the scorers on the GPU machine (one call): python3 -m models.training.train_scorers at scale gpu
# into a copy of models/bundles; the new rewards/ folders and the report come back under $OUT.
set -e
cp -r models/bundles /tmp/b
mkdir -p $OUT/bundles
python3 -m models.training.train_scorers --bundles /tmp/b --out $OUT --scale gpu --workers 16 2>$OUT/stderr.txt | tee $OUT/train-scorers.jsonl | grep -v '"step"' | cut -c1-300
for b in tiny-sd tiny-sd-large tiny-flux tiny-video; do mkdir -p $OUT/bundles/$b; cp -r /tmp/b/$b/rewards /tmp/b/$b/rewards.json $OUT/bundles/$b/; done
rm -rf $OUT/_parts
