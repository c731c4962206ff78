#!/usr/bin/env bash
# bench/run.sh — wasmesh against nginx and HAProxy on this machine, in one run.
#
#   bench/run.sh            full run: 10 s per measurement, 2 s warm-up
#   bench/run.sh --quick    3 s per measurement, 1 s warm-up (a smoke test)
#   bench/run.sh --profile  also record CPU and heap profiles of the wasmesh rows
#   bench/run.sh --only nginx,wasmesh   run a subset (rows: nginx haproxy
#                           wasmesh wasmesh+as-filter wasmesh+my-filter); the
#                           half-load rate needs nginx, so keep it in the list
#
# One upstream (nginx answering a fixed 100-byte body from memory) and the
# load generator share CPU $BENCH_CLIENT_CPU; each proxy in turn gets CPU
# $BENCH_PROXY_CPU to itself (taskset), with one worker. Every proxy is
# measured with wrk (HTTP/1.1 keep-alive) and h2load (h2c), then at half of
# nginx's measured rate with h2load's rate limiter, and its idle RSS is read
# from /proc. The table goes to stdout and bench/results/<date>.md; raw
# outputs to bench/results/raw-<date>/. The exit status is non-zero when a
# proxy did not start, died, or a run saw errors or non-2xx responses.
# Missing goals (see README.md) do not change the exit status.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

QUICK=0
PROFILE=0
ONLY=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--profile) PROFILE=1 ;;
	--only)
		[ $# -ge 2 ] || { echo "bench: --only needs a list" >&2; exit 2; }
		ONLY="$2"
		shift
		;;
	--only=*) ONLY="${1#--only=}" ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

if [ "$QUICK" = 1 ]; then
	DUR=${BENCH_DURATION:-3}
	WARM=${BENCH_WARMUP:-1}
else
	DUR=${BENCH_DURATION:-10}
	WARM=${BENCH_WARMUP:-2}
fi
WRK_THREADS=${BENCH_WRK_THREADS:-1}
WRK_CONNS=${BENCH_WRK_CONNS:-64}
H2_CLIENTS=${BENCH_H2_CLIENTS:-16}
H2_STREAMS=${BENCH_H2_STREAMS:-10}
CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
NICE=${BENCH_NICE:--10}
TRIES=${BENCH_TRIES:-3}
MAX_FOREIGN=${BENCH_MAX_FOREIGN:-10}
BASE=${BENCH_PORT_BASE:-18080}
UPSTREAM_PORT=$BASE
H1_PORT=$((BASE + 1))
H2_PORT=$((BASE + 2))
STATUS_PORT=$((BASE + 9))
ADMIN_PORT=$((BASE + 10))
ALL_ROWS="nginx haproxy wasmesh wasmesh+as-filter wasmesh+my-filter"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools
have() { command -v "$1" >/dev/null 2>&1; }

install_missing() {
	local need=()
	have nginx || need+=(nginx)
	have haproxy || need+=(haproxy)
	have wrk || need+=(wrk)
	have h2load || need+=(nghttp2-client)
	have taskset || need+=(util-linux)
	have curl || need+=(curl)
	have ss || need+=(iproute2)
	have node || need+=(nodejs)
	have npm || need+=(npm)
	if [ ${#need[@]} -gt 0 ]; then
		[ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; run as root or install them"
		log "installing ${need[*]}"
		apt-get update -qq || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
			die "apt-get install ${need[*]} failed"
	fi
	have go || die "go not found (expected /usr/local/go/bin/go)"
}

# ---------------------------------------------------------------- processes
declare -A STARTED # pid -> name, for the processes this script started and has not reaped
cleanup() {
	local p
	for p in "${!STARTED[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${!STARTED[@]}"; do
		stop_pid "$p" quiet
	done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] && [ "$NICE" -lt 0 ]; then
	NICE=0
fi

# Each benchmark process runs in a session of its own whose scheduler
# autogroup gets nice NICE: with autogroups (Linux's default), a process's
# own nice value only ranks it inside its session, and other sessions on a
# shared machine (test runs, builds) would otherwise take an equal share of
# the benchmark CPUs.
BOOST_SH='n=$1; shift; echo "$n" >/proc/self/autogroup 2>/dev/null; exec nice -n "$n" "$@"'

# pinned CPU CMD... — runs CMD in the foreground on CPU, boosted.
pinned() {
	local cpu="$1"
	shift
	setsid --wait sh -c "$BOOST_SH" boost "$NICE" taskset -c "$cpu" "$@"
}

# start NAME CPU CMD... — starts CMD in the background on CPU, boosted; sets PID.
start() {
	local name="$1" cpu="$2"
	shift 2
	setsid sh -c "$BOOST_SH" boost "$NICE" taskset -c "$cpu" "$@" >"$RAW/$name.stdout" 2>"$RAW/$name.stderr" &
	PID=$!
	STARTED[$PID]=$name
}

alive() { [ -e "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop_pid PID [quiet] — SIGTERM, up to 15 s, then SIGKILL; reaps it.
stop_pid() {
	local p="$1" i
	kill -TERM "$p" 2>/dev/null
	for i in $(seq 150); do
		alive "$p" || break
		sleep 0.1
	done
	if alive "$p"; then
		[ "${2:-}" = quiet ] || log "pid $p did not exit 15 s after SIGTERM; killing it"
		kill -KILL "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null
	unset "STARTED[$p]"
	return 0
}

# tree PID — PID and its direct children (nginx's master and worker).
tree() { echo "$1"; pgrep -P "$1" 2>/dev/null; }

# rss_kb PID [FIELD] — VmRSS (or RssAnon, RssFile) of PID and its children, kB.
rss_kb() {
	local total=0 p v
	for p in $(tree "$1"); do
		v=$(awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# cpu_ticks PID — user+system clock ticks of PID and its children.
cpu_ticks() {
	local total=0 p v
	for p in $(tree "$1"); do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# cpu_busy CPU — jiffies of one CPU from /proc/stat: time in tasks (user,
# nice, system), all busy time (also interrupts and softirqs, where loopback
# traffic is processed), and the total.
cpu_busy() {
	awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print $2 + $3 + $4, t - $5 - $6, t }' /proc/stat
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# wait_ready PID URL [h2] — until URL answers 200 (max 30 s) or PID dies.
wait_ready() {
	local p="$1" url="$2" h2="${3:-}" i
	local args=(-fsS -o /dev/null --max-time 2)
	[ "$h2" = h2 ] && args+=(--http2-prior-knowledge)
	for i in $(seq 300); do
		alive "$p" || return 1
		curl "${args[@]}" "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- results
declare -A R         # R[row|proto|field]
FAILURES=()
fail() {
	FAILURES+=("$*")
	log "FAIL: $*"
}

fmt_ms() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.2f", v }'; }

# to_ms VALUE — wrk's 829.00us / 4.17ms / 1.20s / 1.00m in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000
		else if (v ~ /ms$/) n = n
		else if (v ~ /m$/) n *= 60000
		else if (v ~ /s$/) n *= 1000
		print n
	}'
}

# pct LOG — p50 and p99 in ms from h2load's --log-file (3rd column: µs).
pct() {
	awk '{ print $3 }' "$1" | sort -n | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print ""; exit }
			i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
			printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
		}'
}
# cpu_split PID — user and system clock ticks of PID and its children.
cpu_split() {
	local u=0 k=0 p v
	for p in $(tree "$1"); do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}')
		[ -n "$v" ] || continue
		u=$((u + ${v% *}))
		k=$((k + ${v#* }))
	done
	echo "$u $k"
}

# snapshot PID — sets SNAP: time, ticks of the proxy, the upstream and this
# shell's reaped children (the clients), and /proc/stat jiffies of both CPUs.
# (times must run in this shell: a $(...) subshell has no children yet.)
snapshot() {
	times >"$RAW/.times"
	local cli
	cli=$(awk -v hz="$HZ" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		printf "%.0f", t * hz
	}' "$RAW/.times")
	SNAP="$(date +%s.%N) $(cpu_ticks "$1") $(cpu_ticks "$UPSTREAM_PID") $cli $(cpu_busy "$CLIENT_CPU") $(cpu_busy "$PROXY_CPU") $(cpu_split "$1")"
}

# measured PID OUT RUNNER — runs RUNNER OUT (a client on the client CPU)
# and writes OUT.meas: the client's exit status, the proxy's CPU share, the
# client CPU's busy share, the share of each benchmark CPU that other
# processes took, and the disturbance (see best_of), which it also sets.
measured() {
	local pid="$1" out="$2" runner="$3" s0 s1 rc
	snapshot "$pid"
	s0=$SNAP
	"$runner" "$out"
	rc=$?
	snapshot "$pid"
	s1=$SNAP
	awk -v rc="$rc" -v hz="$HZ" -v a="$s0" -v b="$s1" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		# 1 time, 2 proxy, 3 upstream, 4 clients (ticks),
		# 5-7 client CPU task/busy/total, 8-10 proxy CPU task/busy/total (jiffies),
		# 11-12 proxy user/system (ticks)
		wall = y[1] - x[1]
		if (wall <= 0) wall = 1
		proxy = y[2] - x[2]; ups = y[3] - x[3]; cli = y[4] - x[4]
		ctask = y[5] - x[5]; cb = y[6] - x[6]; ct = y[7] - x[7]
		ptask = y[8] - x[8]; pt = y[10] - x[10]
		fc = ct > 0 ? (ctask - ups - cli) / ct * 100 : 0
		fp = pt > 0 ? (ptask - proxy) / pt * 100 : 0
		if (fc < 0) fc = 0
		if (fp < 0) fp = 0
		cbusy = ct > 0 ? cb / ct * 100 : 0
		pcpu = proxy / hz / wall * 100
		# Other processes disturb the proxy CPU whenever they run there (the
		# proxy is alone on it); the client CPU only when they may have taken
		# time the clients and the upstream wanted: that CPU was saturated
		# while the proxy was not (a saturated proxy leaves the client side
		# idle time that others are welcome to).
		dist = fp
		if (cbusy >= 95 && pcpu < 90 && fc > dist) dist = fc
		printf "rc %d\nproxy_cpu %.0f\nclient_cpu %.0f\ndisturbance %.0f\nforeign_client %.0f\nforeign_proxy %.0f\n",
			rc, pcpu, cbusy, dist, fc, fp
		printf "proxy_user_s %.4f\nproxy_sys_s %.4f\nwall_s %.4f\n", (y[11] - x[11]) / hz, (y[12] - x[12]) / hz, wall
		printf "before %s\nafter %s\n", a, b
	}' >"$out.meas"
	DISTURBANCE=$(awk '$1 == "disturbance" { print $2 }' "$out.meas")
}

# best_of PID BASE RUNNER — up to TRIES runs of RUNNER BASE.tryN, stopping at
# the first in which other processes took at most MAX_FOREIGN % of the proxy
# CPU (or of the client CPU while it was saturated and the proxy was not);
# BEST is the least disturbed try.
best_of() {
	local pid="$1" base="$2" runner="$3" n best="" bestf=""
	rm -f "$base".try*
	for n in $(seq "$TRIES"); do
		measured "$pid" "$base.try$n" "$runner"
		if [ -z "$best" ] || [ "$DISTURBANCE" -lt "$bestf" ]; then
			best=$n
			bestf=$DISTURBANCE
		fi
		[ "$DISTURBANCE" -le "$MAX_FOREIGN" ] && break
		alive "$pid" || break
		[ "$n" -lt "$TRIES" ] && log "  disturbed: other processes took $DISTURBANCE% of a busy benchmark CPU; again ($((n + 1))/$TRIES)"
	done
	BEST="$base.try$best"
	TRIED=$n
}

meas() { awk -v k="$2" '$1 == k { print $2 }' "$1.meas"; }

# keep_meas KEY MODE — copies the chosen try's measurements into R.
keep_meas() {
	R[$1|$2_cpu]=$(meas "$BEST" proxy_cpu)
	R[$1|$2_ccpu]=$(meas "$BEST" client_cpu)
	R[$1|$2_foreign]="$(meas "$BEST" foreign_client)/$(meas "$BEST" foreign_proxy)"
	R[$1|$2_tries]=$TRIED
	R[$1|$2_user_s]=$(meas "$BEST" proxy_user_s)
	R[$1|$2_sys_s]=$(meas "$BEST" proxy_sys_s)
	R[$1|$2_wall_s]=$(meas "$BEST" wall_s)
}

# per_req KEY — the proxy's user + system CPU time per request in µs at
# full speed (its CPU time over the requests of the run: rps × wall time).
per_req() {
	awk -v u="${R[$1|max_user_s]:-}" -v k="${R[$1|max_sys_s]:-}" -v w="${R[$1|max_wall_s]:-}" -v r="${R[$1|rps]:-}" 'BEGIN {
		n = r * w
		if (u == "" || n <= 0) { print "n/a"; exit }
		printf "%.1f + %.1f", u * 1e6 / n, k * 1e6 / n
	}'
}

upstream_accepts() { curl -fsS --max-time 2 "http://127.0.0.1:$STATUS_PORT/" 2>/dev/null | awk 'NR == 3 { print $1 }'; }

wrk_runner() {
	pinned "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DUR}s" --latency "$CUR_URL" >"$1" 2>&1
}

# run_wrk ROW PID — HTTP/1.1 keep-alive at full speed.
run_wrk() {
	local row="$1" pid="$2" key="$1|h1" base="$RAW/$1.h1.max.wrk"
	CUR_URL="http://127.0.0.1:$H1_PORT/"
	pinned "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WARM}s" "$CUR_URL" >"$base.warmup" 2>&1
	best_of "$pid" "$base" wrk_runner
	keep_meas "$key" max
	local out="$BEST" rps p50 p99 f sock non2xx bad=""
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	p50=$(awk '/Latency Distribution/ { f = 1 } f && $1 == "50%" { print $2; exit }' "$out")
	p99=$(awk '/Latency Distribution/ { f = 1 } f && $1 == "99%" { print $2; exit }' "$out")
	R[$key|rps]=${rps:-}
	R[$key|p50]=$([ -n "$p50" ] && to_ms "$p50")
	R[$key|p99]=$([ -n "$p99" ] && to_ms "$p99")
	# Errors in any try count.
	for f in "$base".try?; do
		sock=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$f")
		non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
		if [ "$(meas "$f" rc)" != 0 ] || ! grep -q '^Requests/sec:' "$f"; then
			bad="wrk exited $(meas "$f" rc) or printed no rate (see $f)"
		elif [ "${sock:-0}" != 0 ] || [ "${non2xx:-0}" != 0 ]; then
			bad="wrk saw ${sock:-0} socket errors and ${non2xx:-0} responses with status >= 400 (see $f)"
		fi
		[ "$f" = "$out" ] && R[$key|errors]="socket errors ${sock:-0}, status>=400 ${non2xx:-0}"
	done
	if [ -n "$bad" ]; then
		fail "$row HTTP/1.1: $bad"
		R[$key|bad]=1
	fi
}

h2load_runner() {
	rm -f "$1.log"
	pinned "$CLIENT_CPU" h2load "${CUR_ARGS[@]}" --log-file="$1.log" "$CUR_URL" >"$1" 2>&1
}

# run_h2load ROW PID PROTO MODE [RATE] — MODE max (full speed) or half (RATE rps).
run_h2load() {
	local row="$1" pid="$2" proto="$3" mode="$4" rate="${5:-}"
	local key="$row|$proto" base="$RAW/$row.$proto.$mode.h2load" clients
	CUR_ARGS=(-D "$DUR" --warm-up-time="$WARM")
	if [ "$proto" = h1 ]; then
		CUR_URL="http://127.0.0.1:$H1_PORT/"
		clients=$WRK_CONNS
		CUR_ARGS+=(--h1 -c"$clients" -m1)
	else
		CUR_URL="http://127.0.0.1:$H2_PORT/"
		clients=$H2_CLIENTS
		CUR_ARGS+=(-c"$clients" -m"$H2_STREAMS")
	fi
	if [ "$mode" = half ]; then
		CUR_ARGS+=(--rps="$(awk -v r="$rate" -v c="$clients" 'BEGIN { printf "%.3f", r / c }')")
	fi
	best_of "$pid" "$base" h2load_runner
	keep_meas "$key" "$mode"
	local out="$BEST" rps p f done_ bad2 non2xx bad=""
	rps=$(awk '/^finished in/ { gsub(/,/, ""); print $4 }' "$out")
	p=$(pct "$out.log")
	for f in "$base".try?; do
		done_=$(awk '/^requests:/ { gsub(/,/, ""); print $8 }' "$f")
		bad2=$(awk '/^requests:/ { gsub(/,/, ""); print $12 + $14 + $16 }' "$f")
		non2xx=$(awk '/^status codes:/ { gsub(/,/, ""); print $5 + $7 + $9 }' "$f")
		if [ "$(meas "$f" rc)" != 0 ] || [ -z "$done_" ] || [ "$done_" = 0 ]; then
			bad="h2load exited $(meas "$f" rc) or completed no request (see $f)"
		elif [ "${bad2:-0}" != 0 ] || [ "${non2xx:-0}" != 0 ]; then
			bad="h2load saw $bad2 failed/errored/timed-out requests and $non2xx non-2xx responses (see $f)"
		fi
		[ "$f" = "$out" ] && R[$key|${mode}_errors]="failed/errored/timeout ${bad2:-?}, non-2xx ${non2xx:-?}"
	done
	if [ "$mode" = max ]; then
		R[$key|rps]=${rps:-}
		R[$key|p50]=${p% *}
		R[$key|p99]=${p#* }
		R[$key|errors]=${R[$key|max_errors]:-}
	else
		R[$key|half_p99]=${p#* }
		R[$key|half_target]=$rate
		R[$key|half_rps]=${rps:-}
	fi
	if [ -z "$p" ] && [ -z "$bad" ]; then
		bad="no latencies logged (see $out.log)"
	fi
	if [ -n "$bad" ]; then
		local name="HTTP/1.1"
		[ "$proto" = h2 ] && name="h2c"
		fail "$row $name $mode: $bad"
		R[$key|bad]=1
	fi
}

# ---------------------------------------------------------------- configs
render() { # TEMPLATE OUT — fills in @@RUN@@ and the ports.
	sed -e "s#@@RUN@@#$RAW#g" \
		-e "s/@@UPSTREAM_PORT@@/$UPSTREAM_PORT/g" -e "s/@@STATUS_PORT@@/$STATUS_PORT/g" \
		-e "s/@@H1_PORT@@/$H1_PORT/g" -e "s/@@H2_PORT@@/$H2_PORT/g" -e "s/@@ADMIN_PORT@@/$ADMIN_PORT/g" \
		-e "s#@@ASFILTER_WASM@@#$ASFILTER_WASM#g" -e "s#@@MYFILTER_WASM@@#$MYFILTER_WASM#g" \
		"$1" >"$2"
}

# wasmesh_config SNIPPET OUT — bench/configs/wasmesh.yaml with each
# "@@HTTP_FILTERS@@" line replaced by SNIPPET (indented), or removed.
wasmesh_config() {
	local snip="$1" out="$2"
	awk -v snip="$snip" '
		/^ *@@HTTP_FILTERS@@ *$/ {
			if (snip != "") {
				match($0, /^ */)
				ind = substr($0, 1, RLENGTH)
				while ((getline l < snip) > 0) if (l !~ /^#/) print ind l
				close(snip)
			}
			next
		}
		{ print }' "$here/configs/wasmesh.yaml" >"$out.tmpl"
	render "$out.tmpl" "$out"
	rm -f "$out.tmpl"
}

# ---------------------------------------------------------------- one proxy
# bench_row ROW — start, check, measure and stop one proxy configuration.
bench_row() {
	local row="$1" cmd=() env=() check_header=""
	case "$row" in
	nginx)
		render "$here/configs/nginx.conf" "$RAW/nginx.conf"
		mkdir -p "$RAW/nginx-tmp"
		cmd=(nginx -p "$RAW" -c "$RAW/nginx.conf" -e "$RAW/nginx.error.log")
		;;
	haproxy)
		render "$here/configs/haproxy.cfg" "$RAW/haproxy.cfg"
		cmd=(haproxy -db -f "$RAW/haproxy.cfg")
		;;
	wasmesh*)
		local snip=""
		case "$row" in
		wasmesh+as-filter) snip="$here/configs/filter-asfilter.yaml"; check_header="x-as-filter: bench" ;;
		wasmesh+my-filter) snip="$here/configs/filter-myfilter.yaml"; check_header="x-greeting: bench" ;;
		esac
		wasmesh_config "$snip" "$RAW/$row.yaml"
		local bin="$root/bin/wasmesh"
		env=(GOMAXPROCS=1)
		if [ "$PROFILE" = 1 ]; then
			bin="$root/bin/wasmesh-prof"
			env+=(WASMESH_CPUPROFILE="$RAW/$row.cpu.pprof" WASMESH_MEMPROFILE="$RAW/$row.heap.pprof")
		fi
		cmd=(env "${env[@]}" "$bin" -c "$RAW/$row.yaml" --concurrency 1 -l error --drain-time-s 1
			--log-path "$RAW/$row.log")
		;;
	*) die "unknown row $row" ;;
	esac

	local p
	for p in "$H1_PORT" "$H2_PORT"; do
		if port_busy "$p"; then
			fail "$row: port $p is already in use before the start"
			return
		fi
	done
	log "$row: starting on CPU $PROXY_CPU"
	local acc0
	acc0=$(upstream_accepts)
	start "$row" "$PROXY_CPU" "${cmd[@]}"
	local pid=$PID
	if ! wait_ready "$pid" "http://127.0.0.1:$H1_PORT/" || ! wait_ready "$pid" "http://127.0.0.1:$H2_PORT/" h2; then
		fail "$row: did not start (HTTP/1.1 on :$H1_PORT and h2c on :$H2_PORT must answer 200 within 30 s; see $RAW/$row.stderr)"
		stop_pid "$pid"
		return
	fi
	# One request on each protocol, checked: the upstream's body, and the filter's header.
	local h1resp h2resp
	h1resp=$(curl -sS -i --max-time 5 "http://127.0.0.1:$H1_PORT/" 2>&1)
	h2resp=$(curl -sS -i --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$H2_PORT/" 2>&1)
	printf '%s\n\n%s\n' "$h1resp" "$h2resp" >"$RAW/$row.first-responses.txt"
	local r
	for r in "$h1resp" "$h2resp"; do
		if ! grep -q 'wasmesh-bench-upstream' <<<"$r"; then
			fail "$row: a first request did not return the upstream's body (see $RAW/$row.first-responses.txt)"
		fi
		if [ -n "$check_header" ] && ! tr -d '\r' <<<"$r" | grep -qi "^$check_header\$"; then
			fail "$row: the filter's response header '$check_header' is missing (see $RAW/$row.first-responses.txt)"
		fi
	done
	sleep 1
	R[$row|idle_rss]=$(rss_kb "$pid")
	R[$row|idle_anon]=$(rss_kb "$pid" RssAnon)
	R[$row|idle_file]=$(rss_kb "$pid" RssFile)
	log "$row: idle RSS $(awk -v k="${R[$row|idle_rss]}" 'BEGIN { printf "%.1f MB", k / 1024 }')"

	log "$row: HTTP/1.1 wrk -t$WRK_THREADS -c$WRK_CONNS -d${DUR}s"
	run_wrk "$row" "$pid"
	if alive "$pid"; then
		local t1="${R[nginx|h1|rps]:-}"
		if [ -n "$t1" ]; then
			R[half|h1]=$(awk -v r="$t1" 'BEGIN { printf "%.0f", r / 2 }')
			log "$row: HTTP/1.1 at half load (${R[half|h1]} rps)"
			run_h2load "$row" "$pid" h1 half "${R[half|h1]}"
		fi
	fi
	if alive "$pid"; then
		log "$row: h2c h2load -c$H2_CLIENTS -m$H2_STREAMS -D $DUR"
		run_h2load "$row" "$pid" h2 max
	fi
	if alive "$pid"; then
		local t2="${R[nginx|h2|rps]:-}"
		if [ -n "$t2" ]; then
			R[half|h2]=$(awk -v r="$t2" 'BEGIN { printf "%.0f", r / 2 }')
			log "$row: h2c at half load (${R[half|h2]} rps)"
			run_h2load "$row" "$pid" h2 half "${R[half|h2]}"
		fi
	fi
	if ! alive "$pid"; then
		fail "$row: the proxy died during the runs (see $RAW/$row.stderr and $RAW/$row.log)"
		wait "$pid" 2>/dev/null
		R[$row|exit]=$?
		unset "STARTED[$pid]"
		fail "$row: exit status ${R[$row|exit]}; last log lines: $(tail -n 5 "$RAW/$row.stderr" "$RAW/$row.log" 2>/dev/null | tr '\n' ' ' | cut -c1-600)"
		return
	fi
	sleep 1
	R[$row|after_rss]=$(rss_kb "$pid")
	R[$row|upstream_conns]=$(($(upstream_accepts) - acc0))
	case "$row" in
	wasmesh*)
		curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/stats" >"$RAW/$row.stats.txt" 2>/dev/null
		R[$row|stats]=$(awk -F': ' '
			/^http\.(h1|h2c)\.downstream_rq_(2xx|4xx|5xx): / || /^cluster\.upstream\.upstream_(cx_total|rq_total|rq_5xx): / {
				sub(/^http\./, "", $1); sub(/^cluster\.upstream\./, "", $1); printf "%s%s=%s", sep, $1, $2; sep = " "
			}' "$RAW/$row.stats.txt")
		;;
	esac
	log "$row: stopping"
	local t0 t1s
	t0=$(date +%s.%N)
	stop_pid "$pid"
	t1s=$(date +%s.%N)
	R[$row|stop_s]=$(awk -v a="$t0" -v b="$t1s" 'BEGIN { printf "%.1f", b - a }')
}

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f×", a / b }'; }
mb() { awk -v k="$1" 'BEGIN { if (k == "") print "n/a"; else printf "%.1f", k / 1024 }'; }
int() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.0f", v }'; }

report() {
	local row proto name pname
	echo "# wasmesh bench — $STAMP${QUICK_NOTE}"
	echo
	echo "Machine: $(nproc) CPUs ($(lscpu 2>/dev/null | awk -F': *' '/^Model name/ { print $2; exit }')), kernel $(uname -r)."
	echo "wasmesh built from the working tree at $(git -C "$root" rev-parse --short HEAD 2>/dev/null), $(go version | awk '{print $3}');" \
		"$(nginx -v 2>&1 | sed 's/^nginx version: //'), HAProxy $(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }'), wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), $(h2load --version 2>/dev/null | awk '{ print $2 }')."
	echo "Upstream and load generator on CPU $CLIENT_CPU, proxy alone on CPU $PROXY_CPU, one worker each; every benchmark process in its own scheduler autogroup at nice $NICE."
	echo "Each measurement: ${WARM} s warm-up, ${DUR} s measured. HTTP/1.1: wrk -t$WRK_THREADS -c$WRK_CONNS (keep-alive)." \
		"h2c: h2load -c$H2_CLIENTS -m$H2_STREAMS. Half load: h2load at 50% of nginx's rate (HTTP/1.1: --h1 -c$WRK_CONNS -m1; h2c: -c$H2_CLIENTS -m$H2_STREAMS)."
	echo "Load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "| proxy | protocol | rps | p50 ms | p99 ms | p99 ms @ half load | idle RSS MB | proxy CPU % |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for row in $ROWS; do
		for proto in h1 h2; do
			name="HTTP/1.1"
			[ "$proto" = h2 ] && name="h2c"
			local k="$row|$proto" rps="n/a" half
			[ -n "${R[$k|rps]:-}" ] && rps=$(int "${R[$k|rps]}")
			[ -n "${R[$k|bad]:-}" ] && rps="$rps FAIL"
			half=$(fmt_ms "${R[$k|half_p99]:-}")
			if [ -n "${R[$k|half_rps]:-}" ] &&
				awk -v a="${R[$k|half_rps]}" -v t="${R[$k|half_target]}" 'BEGIN { exit !(a < 0.95 * t) }'; then
				half="$half (reached $(int "${R[$k|half_rps]}") of $(int "${R[$k|half_target]}") rps)"
			fi
			echo "| $row | $name | $rps | $(fmt_ms "${R[$k|p50]:-}") | $(fmt_ms "${R[$k|p99]:-}") | $half | $(mb "${R[$row|idle_rss]:-}") | ${R[$k|max_cpu]:-n/a} |"
		done
	done
	echo
	echo "Half-load rate: HTTP/1.1 ${R[half|h1]:-n/a} rps, h2c ${R[half|h2]:-n/a} rps (50% of nginx's rps above)."
	echo
	echo "wasmesh's ratios (rps: higher is better; p99: lower is better):"
	echo
	echo "| wasmesh row | protocol | rps ÷ nginx | rps ÷ haproxy | p99 ÷ nginx | p99 ÷ haproxy | p99 @ half ÷ nginx | p99 @ half ÷ haproxy |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for row in $ROWS; do
		case "$row" in wasmesh*) ;; *) continue ;; esac
		for proto in h1 h2; do
			name="HTTP/1.1"
			[ "$proto" = h2 ] && name="h2c"
			local k="$row|$proto" n="nginx|$proto" h="haproxy|$proto"
			echo "| $row | $name | $(ratio "${R[$k|rps]:-}" "${R[$n|rps]:-}") | $(ratio "${R[$k|rps]:-}" "${R[$h|rps]:-}") |" \
				"$(ratio "${R[$k|p99]:-}" "${R[$n|p99]:-}") | $(ratio "${R[$k|p99]:-}" "${R[$h|p99]:-}") |" \
				"$(ratio "${R[$k|half_p99]:-}" "${R[$n|half_p99]:-}") | $(ratio "${R[$k|half_p99]:-}" "${R[$h|half_p99]:-}") |"
		done
	done
	echo
	if [ -n "${R[wasmesh|idle_rss]:-}" ]; then
		echo "Goals for wasmesh (no filter): rps ≥ 1.0× nginx, p99 at half load ≤ 1.1× nginx, idle RSS ≤ 20 MB."
		echo
		for proto in h1 h2; do
			name="HTTP/1.1"
			[ "$proto" = h2 ] && name="h2c"
			goal "rps $name" "${R[wasmesh|$proto|rps]:-}" "${R[nginx|$proto|rps]:-}" ge 1.0
			goal "p99 @ half load $name" "${R[wasmesh|$proto|half_p99]:-}" "${R[nginx|$proto|half_p99]:-}" le 1.1
		done
		local rssmb
		rssmb=$(mb "${R[wasmesh|idle_rss]}")
		if awk -v v="$rssmb" 'BEGIN { exit !(v <= 20) }'; then
			echo "- idle RSS: $rssmb MB — met"
		else
			echo "- idle RSS: $rssmb MB — not met"
		fi
		echo
	fi
	echo "Details. proxy CPU: share of one CPU used by the proxy's processes. client CPU: busy share of CPU $CLIENT_CPU, where wrk/h2load and the upstream run (near 100: the client side, not the proxy, set the rate). other: share of the client CPU / of the proxy CPU taken by processes outside the benchmark (other work on this machine). A measurement is repeated (up to $TRIES tries) while others take more than $MAX_FOREIGN % of the proxy CPU, or of the client CPU while it is saturated and the proxy is not; the least disturbed try is kept. proxy CPU µs per request: the proxy's user and system CPU time in the full-speed run over its requests (rps × duration); the system part is mostly the socket reads and writes, so it shows how much of a gap is the proxy's own code."
	echo
	echo "| proxy | protocol | proxy CPU % (max / half) | client CPU % (max / half) | other % client/proxy CPU (max · half) | tries (max / half) | half-load target / reached rps | errors (max run) | proxy CPU µs per request, user + system (max) | idle RSS anon + file MB | RSS after runs MB | upstream connections opened | stop s |"
	echo "|---|---|---|---|---|---|---|---|---|---|---:|---:|---:|"
	for row in $ROWS; do
		for proto in h1 h2; do
			name="HTTP/1.1"
			[ "$proto" = h2 ] && name="h2c"
			local k="$row|$proto"
			echo "| $row | $name | ${R[$k|max_cpu]:-n/a} / ${R[$k|half_cpu]:-n/a} | ${R[$k|max_ccpu]:-n/a} / ${R[$k|half_ccpu]:-n/a} |" \
				"${R[$k|max_foreign]:-n/a} · ${R[$k|half_foreign]:-n/a} | ${R[$k|max_tries]:-n/a} / ${R[$k|half_tries]:-n/a} |" \
				"$(int "${R[$k|half_target]:-}") / $(int "${R[$k|half_rps]:-}") | ${R[$k|errors]:-n/a} | $(per_req "$k") |" \
				"$(mb "${R[$row|idle_anon]:-}") + $(mb "${R[$row|idle_file]:-}") | $(mb "${R[$row|after_rss]:-}") | ${R[$row|upstream_conns]:-n/a} | ${R[$row|stop_s]:-n/a} |"
		done
	done
	local any=0
	for row in $ROWS; do
		if [ -n "${R[$row|stats]:-}" ]; then
			[ $any = 0 ] && { echo; echo "wasmesh admin counters after the runs:"; echo; any=1; }
			echo "- $row: ${R[$row|stats]}"
		fi
	done
	echo
	if [ ${#FAILURES[@]} -gt 0 ]; then
		echo "FAILURES:"
		echo
		local f
		for f in "${FAILURES[@]}"; do echo "- $f"; done
	else
		echo "No run failed."
	fi
	echo
	echo "Raw outputs: ${RAW#"$root"/}"
}

# goal LABEL VALUE PEER ge|le FACTOR
goal() {
	local label="$1" v="$2" p="$3" op="$4" f="$5" r
	if [ -z "$v" ] || [ -z "$p" ]; then
		echo "- $label: n/a"
		return
	fi
	r=$(awk -v a="$v" -v b="$p" 'BEGIN { printf "%.2f", a / b }')
	if awk -v r="$r" -v f="$f" -v op="$op" 'BEGIN { exit !(op == "ge" ? r >= f : r <= f) }'; then
		echo "- $label: ${r}× nginx — met"
	else
		echo "- $label: ${r}× nginx — not met"
	fi
}

# ---------------------------------------------------------------- main
main() {
	[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; proxy and client share a CPU"
	install_missing
	HZ=$(getconf CLK_TCK)
	STAMP=$(date -u +%Y-%m-%d_%H%M%S)
	QUICK_NOTE=""
	local suffix=""
	if [ "$QUICK" = 1 ]; then
		QUICK_NOTE=" (quick mode)"
		suffix="-quick"
	fi
	RAW="$here/results/raw-$STAMP$suffix"
	mkdir -p "$RAW" "$RAW/upstream-tmp"
	RESULT="$here/results/$STAMP$suffix.md"

	ROWS=""
	local r
	for r in $ALL_ROWS; do
		if [ -z "$ONLY" ] || [[ ",$ONLY," == *",$r,"* ]]; then
			ROWS="$ROWS $r"
		fi
	done
	[ -n "$ROWS" ] || die "--only $ONLY matches no row ($ALL_ROWS)"

	log "building bin/wasmesh"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -ldflags='-s -w' -o bin/wasmesh ./cmd/wasmesh) || die "go build ./cmd/wasmesh failed"
	if [ "$PROFILE" = 1 ]; then
		(cd "$root" && go build -o bin/wasmesh-prof ./bench/cmd/wasmesh-prof) || die "go build ./bench/cmd/wasmesh-prof failed"
	fi
	MYFILTER_WASM="$root/examples/filters/my-filter/my-filter.wasm"
	ASFILTER_WASM=""
	if [[ "$ROWS" == *as-filter* ]]; then
		log "building the AssemblyScript filter"
		ASFILTER_WASM=$("$root/wasm/testdata/asfilter/build.sh" 2>"$RAW/asfilter-build.log") ||
			die "wasm/testdata/asfilter/build.sh failed (see $RAW/asfilter-build.log)"
	fi

	for r in "$UPSTREAM_PORT" "$STATUS_PORT" "$H1_PORT" "$H2_PORT" "$ADMIN_PORT"; do
		port_busy "$r" && die "port $r is in use; stop what listens there or set BENCH_PORT_BASE"
	done
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

	render "$here/configs/upstream-nginx.conf" "$RAW/upstream.conf"
	log "upstream: nginx on CPU $CLIENT_CPU, :$UPSTREAM_PORT"
	start upstream "$CLIENT_CPU" nginx -p "$RAW" -c "$RAW/upstream.conf" -e "$RAW/upstream.error.log"
	UPSTREAM_PID=$PID
	wait_ready "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/" || die "the upstream did not start (see $RAW/upstream.stderr)"

	for r in $ROWS; do
		bench_row "$r"
		alive "$UPSTREAM_PID" || die "the upstream died (see $RAW/upstream.stderr)"
	done
	stop_pid "$UPSTREAM_PID"

	report | tee "$RESULT"
	log "results: ${RESULT#"$root"/}"
	[ ${#FAILURES[@]} -eq 0 ]
}

main
