#!/usr/bin/env bash
# Runs the same workloads (bench/workloads/*.yaml) against Weir (Go SDK,
# Kafka and AMQP listeners), NATS JetStream and RabbitMQ, one server after
# the other, all on loopback, and writes the comparison section of
# docs/BENCHMARKS.md and its charts (docs/bench/).
#
# On a fresh machine it builds the latest nats-server through the Go
# module proxy and installs rabbitmq-server from Debian. Every server gets
# a fresh data directory under --out. Durability, two variants per peer:
#   weir             fsync: always (its default: fsync before acknowledge);
#                    on queue-acks also weir-amqp-bounded and
#                    weir-native-bounded, a queue of max length 500 that
#                    holds its publishers there (x-overflow block; over the
#                    SDK OverflowBlock), as RabbitMQ's credit flow does
#   nats             JetStream's default (sync_interval 2m: lazy fsync)
#   nats-sync        sync_interval: always (fsync before acknowledge)
#   rabbitmq         classic durable queues, persistent messages (the default)
#   rabbitmq-quorum  quorum queues (their Raft log is fsynced before a
#                    publisher confirm), persistent messages
# Each run samples its server's resident memory and CPU every second.
#
# Usage: bench/compare/compare.sh [--short] [options]
#   --short            a few seconds per workload, a 200,000-record backlog,
#                      200 queues instead of 10,000 (proves the script; the
#                      figures are not the comparison)
#   --duration D       measured time of each timed workload (default 60s)
#   --warmup D         warm-up of each (default 10s)
#   --backlog N        records of the backlog drain (default 10000000)
#   --queues N         queues of queues-10k (default 10000), 1 record/s each
#   --workloads "A B"  workload names (default: every file of bench/workloads)
#   --systems "A B"    of: weir nats nats-sync rabbitmq (default: all four;
#                      rabbitmq runs both rabbitmq and rabbitmq-quorum)
#   --skip "W:L ..."   do not run workload W on row L (for example
#                      backlog-drain:nats-sync); the report names them
#   --out DIR          results, logs and data (default /tmp/weir-compare)
#   --weir BINARY      use this weir binary instead of building ./cmd/weir
#   --keep-results     keep the results of earlier runs in --out (to rerun
#                      some workloads or systems and report them all)
#   --catch-up D       how long consumers may take to finish after the
#                      producers stop (default 30s; 10s with --short)
#   --no-doc           do not touch docs/BENCHMARKS.md and docs/bench/
#   --note TEXT        added to the section's preamble
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=60s WARMUP=10s BACKLOG=10000000 QUEUES=10000 SHORT=0 DOC=1 NOTE="" KEEP=0 CATCHUP=30s
OUT=/tmp/weir-compare
WEIR_BINARY=""
WORKLOADS=""
SKIP=""
SYSTEMS="weir nats nats-sync rabbitmq"
while [ $# -gt 0 ]; do
	case "$1" in
	--short) SHORT=1 DURATION=5s WARMUP=2s BACKLOG=200000 QUEUES=200 CATCHUP=10s ;;
	--duration) DURATION=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--backlog) BACKLOG=$2; shift ;;
	--queues) QUEUES=$2; shift ;;
	--workloads) WORKLOADS=$2; shift ;;
	--systems) SYSTEMS=$2; shift ;;
	--skip) SKIP=$2; shift ;;
	--out) OUT=$2; shift ;;
	--weir) WEIR_BINARY=$2; shift ;;
	--keep-results) KEEP=1 ;;
	--catch-up) CATCHUP=$2; shift ;;
	--no-doc) DOC=0 ;;
	--note) NOTE=$2; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$WORKLOADS" ]; then
	WORKLOADS=$(cd bench/workloads && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')
fi
mkdir -p "$OUT/bin" "$OUT/logs" "$OUT/data"
if [ "$KEEP" = 0 ]; then rm -rf "$OUT/results"; fi
rm -rf "$OUT/data"/*
log() { echo "== $(date -u +%H:%M:%S) $*"; }

# --- install and build ---------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
log "building the latest nats-server through the Go module proxy"
GOFLAGS= go install github.com/nats-io/nats-server/v2@latest
NATS_SERVER="$(go env GOPATH)/bin/nats-server"
RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
if [ ! -x "$RABBITMQ_SERVER" ]; then
	log "installing rabbitmq-server from Debian"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server
fi
log "building weir and the report"
if [ -n "$WEIR_BINARY" ]; then
	cp "$WEIR_BINARY" "$OUT/bin/weir"
else
	go build -o "$OUT/bin/weir" ./cmd/weir
fi
go build -o "$OUT/bin/report" ./bench/compare/report
WEIR="$OUT/bin/weir"
NATS_VERSION=$("$NATS_SERVER" --version | awk '{print $NF}')
RABBITMQ_VERSION=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)
WEIR_VERSION=$(git describe --always --dirty 2>/dev/null || echo unknown)

# --- servers -------------------------------------------------------------
# Fixed loopback ports; a busy one stops the script before anything runs.
P_HTTP=38080 P_KAFKA=39092 P_AMQP=35672 P_NATS=34222 P_RABBIT=35673 P_RABBIT_DIST=45673
for p in $P_HTTP $P_KAFKA $P_AMQP $P_NATS $P_RABBIT $P_RABBIT_DIST; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "compare.sh: port $p is in use" >&2
		exit 1
	fi
done
SERVER_PID=""
wait_port() { # port, what
	for _ in $(seq 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "compare.sh: $2 did not open port $1; see $OUT/logs" >&2
	return 1
}
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill -- "-$SERVER_PID" 2>/dev/null || kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}
trap stop_server EXIT
start_weir() {
	setsid "$WEIR" serve --http-addr 127.0.0.1:$P_HTTP --kafka-addr 127.0.0.1:$P_KAFKA --amqp-addr 127.0.0.1:$P_AMQP \
		--mqtt-addr= --data "$OUT/data/weir" --fsync always --log-level warn >"$OUT/logs/server-weir.log" 2>&1 &
	SERVER_PID=$!
	wait_port $P_HTTP weir && wait_port $P_KAFKA weir && wait_port $P_AMQP weir
}
start_nats() { # variant: nats | nats-sync
	local dir="$OUT/data/$1" sync=""
	mkdir -p "$dir"
	if [ "$1" = nats-sync ]; then sync="sync_interval: always"; fi
	cat >"$dir/nats.conf" <<-EOF
		listen: 127.0.0.1:$P_NATS
		jetstream {
		  store_dir: "$dir/js"
		  max_file_store: 200GB
		  $sync
		}
	EOF
	setsid "$NATS_SERVER" -c "$dir/nats.conf" >"$OUT/logs/server-$1.log" 2>&1 &
	SERVER_PID=$!
	wait_port $P_NATS nats-server
}
start_rabbitmq() {
	local dir="$OUT/data/rabbitmq"
	mkdir -p "$dir/home"
	echo '[].' >"$dir/enabled_plugins"
	# A fixed 2 GB free-disk limit instead of the default 50 MB, so that a
	# long run stops on the alarm rather than filling the disk.
	printf 'listeners.tcp.default = 127.0.0.1:%s\ndisk_free_limit.absolute = 2GB\n' $P_RABBIT >"$dir/rabbitmq.conf"
	HOME="$dir/home" RABBITMQ_NODENAME=weircompare@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT=$P_RABBIT RABBITMQ_DIST_PORT=$P_RABBIT_DIST RABBITMQ_MNESIA_BASE="$dir/mnesia" \
		RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
		ERL_EPMD_ADDRESS=127.0.0.1 setsid "$RABBITMQ_SERVER" >"$OUT/logs/server-rabbitmq.log" 2>&1 &
	SERVER_PID=$!
	wait_port $P_RABBIT rabbitmq-server
}

# --- runs ----------------------------------------------------------------
FAILED=()
has() { [[ " $WORKLOADS " == *" $1 "* ]]; }
E2E_RATE=""
if [ -f "$OUT/results/firehose-1k/weir-native/result.json" ] && ! has firehose-1k; then # kept from a run before
	E2E_RATE=$("$OUT/bin/report" half-rate "$OUT/results/firehose-1k/weir-native/result.json")
fi
# applies LABEL WORKLOAD: whether the workload runs on that system.
applies() {
	if [[ " $SKIP " == *" $2:$1 "* ]]; then return 1; fi
	case "$1:$2" in
	weir-kafka:queue-acks | weir-kafka:queues-10k) return 1 ;; # Kafka has no per-record acks
	weir-amqp-bounded:queue-acks | weir-native-bounded:queue-acks) return 0 ;;
	*-bounded:*) return 1 ;;
	weir-native:partitions-* | weir-kafka:partitions-*) return 0 ;;
	*:partitions-*) return 1 ;; # no partitions on the peers
	esac
}
run_one() { # label driver url [driver options...]
	local label=$1 driver=$2 url=$3 w
	shift 3
	for w in $WORKLOADS; do
		applies "$label" "$w" || continue
		local args=(--set "duration=$DURATION" --set "warmup=$WARMUP" --catch-up "$CATCHUP")
		case "$w" in
		backlog-drain) args=(--set "backlogRecords=$BACKLOG") ;;
		queues-10k) args+=(--set "topics=$QUEUES" --set "producerRate=$QUEUES") ;;
		e2e-latency) if [ -n "$E2E_RATE" ]; then args+=(--set "producerRate=$E2E_RATE"); fi ;;
		esac
		log "$w on $label"
		if "$WEIR" bench --workload "bench/workloads/$w.yaml" --driver "$driver" --url "$url" "$@" \
			--server-pid "$SERVER_PID" --label "$label" --out "$OUT/results/$w/$label" --progress never \
			"${args[@]}" >"$OUT/logs/$w-$label.log" 2>&1; then
			sed -n '2,3p' "$OUT/logs/$w-$label.log"
		else
			echo "   FAILED (see $OUT/logs/$w-$label.log): $(tail -1 "$OUT/logs/$w-$label.log")"
			FAILED+=("$w on $label")
		fi
		if [ "$label:$w" = weir-native:firehose-1k ] && [ -f "$OUT/results/$w/$label/result.json" ]; then
			E2E_RATE=$("$OUT/bin/report" half-rate "$OUT/results/$w/$label/result.json")
			log "end-to-end latency workload rate: $E2E_RATE records/s (half of Weir's firehose)"
		fi
	done
}

# firehose-1k runs first, so the end-to-end workload knows Weir's rate.
if has firehose-1k; then WORKLOADS="firehose-1k ${WORKLOADS//firehose-1k/}"; fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for system in $SYSTEMS; do
	case $system in
	weir)
		start_weir
		run_one weir-native weir "127.0.0.1:$P_HTTP"
		run_one weir-native-bounded weir "127.0.0.1:$P_HTTP" --driver-opt max-length=500 --driver-opt overflow=block
		run_one weir-kafka kafka "127.0.0.1:$P_KAFKA"
		run_one weir-amqp amqp "amqp://guest:guest@127.0.0.1:$P_AMQP/"
		run_one weir-amqp-bounded amqp "amqp://guest:guest@127.0.0.1:$P_AMQP/" --driver-opt max-length=500 --driver-opt overflow=block
		;;
	nats | nats-sync)
		start_nats "$system"
		run_one "$system" nats "nats://127.0.0.1:$P_NATS"
		;;
	rabbitmq)
		start_rabbitmq
		run_one rabbitmq amqp "amqp://guest:guest@127.0.0.1:$P_RABBIT/" --driver-opt queue-type=classic
		run_one rabbitmq-quorum amqp "amqp://guest:guest@127.0.0.1:$P_RABBIT/" --driver-opt queue-type=quorum
		;;
	*) echo "compare.sh: unknown system $system" >&2; exit 2 ;;
	esac
	stop_server
	rm -rf "$OUT/data"/*
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$DOC" = 1 ]; then
	kind="Full run"
	if [ "$SHORT" = 1 ]; then
		kind="**Short run** (\`--short\`: the script's proof, not the comparison; rerun without \`--short\` on a quiet machine)"
	fi
	cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
	mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
	skipped=""
	if [ -n "$SKIP" ]; then skipped=" Not run (\`--skip\`): $(echo $SKIP | sed 's/:/ on /g; s/ \([^ ]* on\)/, \1/g')."; fi
	note="$kind of $(date -u +%Y-%m-%d), \`bench/compare/compare.sh$( [ "$SHORT" = 1 ] && echo ' --short')\`: $DURATION measured after $WARMUP of warm-up per workload, a backlog of $BACKLOG records, $QUEUES queues. Machine: $(nproc) cores ($cpu), $mem, clients and server on the same cores. Load average $LOAD_BEFORE before, $LOAD_AFTER after. Weir $WEIR_VERSION, nats-server $NATS_VERSION, rabbitmq-server $RABBITMQ_VERSION (Debian).$skipped"
	if [ -n "$NOTE" ]; then note="$note $NOTE"; fi
	"$OUT/bin/report" write -results "$OUT/results" -doc docs/BENCHMARKS.md -charts docs/bench -note "$note"
	log "wrote docs/BENCHMARKS.md and docs/bench/"
fi
if [ ${#FAILED[@]} -gt 0 ]; then
	log "failed runs: ${FAILED[*]}"
	exit 1
fi
log "done: $OUT/results"
