#!/usr/bin/env bash
# CPU of each thread of the co-located funnel process over a window, per
# Recommend: run it while a fixed-rate load runs, e.g.
#   npm run loadtest -- --profile bench --rate 20 --duration 30s &   # then, once the bench phase runs:
#   bash scripts/thread-cpu.sh 20 20      # SECONDS RATE
# Threads are listed by id (creation order: main, V8 and libuv helpers, then
# worker threads: recall's thread, the ONNX pools). From /proc, 10 ms ticks.
set -euo pipefail
secs="${1:?seconds}"; rate="${2:?Recommend/s during the window}"
pid="$(pgrep -f 'deploy/local/dist/colocated.js' | head -1)"
[ -n "$pid" ] || { echo "no co-located funnel process running" >&2; exit 2; }
snap() { for t in /proc/"$pid"/task/*; do echo "${t##*/} $(tr ' ' _ < "$t"/comm) $(awk '{print ($14+$15)*10}' "$t"/stat)"; done | sort; }
a="$(snap)"; sleep "$secs"; b="$(snap)"
echo "thread comm cpu_ms ms_per_recommend"
join <(echo "$a") <(echo "$b") | awk -v n="$((secs * rate))" '{d=$5-$3; if (d>0) {printf "%s %s %d %.2f\n", $1, $2, d, d/n; tot+=d}} END {printf "total - %d %.2f\n", tot, tot/n}'
