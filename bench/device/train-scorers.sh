# Retrain the scorers on the GPU machine (one call): python3 -m models.training.train_scorers at scale gpu
# into a copy of models/bundles. The report, the log and each new scorer as $OUT/<scorer>.onnx come back
# (the device tool does not return deep folders; install them with models.training.train_scorers'
# _install, as models/README.md says). Extra arguments go to train_scorers
# (e.g. --only reward-image-held-out --no-before). All four at scale gpu take about 11 minutes: past
# one call's 600 s, so train them in two calls with --only.
set -e
rm -rf /tmp/b && cp -r models/bundles /tmp/b
python3 -m models.training.train_scorers --bundles /tmp/b --out $OUT --scale gpu --workers 16 "$@" 2>$OUT/stderr.txt | tee $OUT/train-scorers.jsonl | grep -v '"step"' | cut -c1-300
for f in $OUT/_parts/*/model.onnx; do cp "$f" "$OUT/$(basename "$(dirname "$f")").onnx"; done
rm -rf $OUT/_parts
