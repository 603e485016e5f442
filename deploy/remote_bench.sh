#!/usr/bin/env bash
# Run `edgebranchy bench` on a remote board over ssh and fetch the results.
#   deploy/remote_bench.sh user@board runs/lenet-artifact [extra bench arguments...]
# Copies the artifact (device independent) to the board, runs the bench there with the board's
# own profile (auto-detected), and copies results.json (+ the .jsonl trial log) back to runs/.
# Needs edgebranchy installed on the board (pip install edgebranchy, or the Jetson container).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 USER@HOST ARTIFACT_DIR [bench arguments...]" >&2
    exit 2
fi
host=$1; artifact=$2; shift 2
name=$(basename "$artifact")
stamp=$(date +%Y%m%d-%H%M%S)
remote_dir="edgebranchy-bench/$stamp"
ssh "$host" "mkdir -p $remote_dir"
scp -rq "$artifact" "$host:$remote_dir/$name"
ssh -t "$host" "cd $remote_dir && edgebranchy bench $name --profile auto --out results.json $*"
mkdir -p runs
scp -q "$host:$remote_dir/results.json" "runs/$stamp-$host.json"
scp -q "$host:$remote_dir/results.json.jsonl" "runs/$stamp-$host.json.jsonl" || true
echo "results: runs/$stamp-$host.json (edgebranchy report runs/$stamp-$host.json --out runs/report)"
