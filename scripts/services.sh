#!/usr/bin/env bash
# scripts/services.sh — install, start and stop the real backends the test suites use
# (Redis, a Redis Cluster, ClickHouse, PostgreSQL) from Debian's packages, on loopback, without systemd.
#
#   scripts/services.sh install [SERVICE...]   apt-get install what is missing (nothing else)
#   scripts/services.sh start   [SERVICE...]   install if missing, start, wait until each answers,
#                                              then print `export` lines (for eval)
#   scripts/services.sh stop    [SERVICE...]   stop what this script started
#   scripts/services.sh status  [SERVICE...]   say what runs; exit 1 if any is down
#   scripts/services.sh env     [SERVICE...]   print the `export` lines only
#   scripts/services.sh reset   [SERVICE...]   stop, delete the data, start afresh (prints env)
#
# SERVICE is redis, redis-cluster, clickhouse or postgres; none means all four. Typical use:
#
#   eval "$(scripts/services.sh start)"     # then: go test ./...   (or make test)
#
# Only the export lines go to stdout; every progress or diagnostic message goes to stderr,
# so the eval above is safe. Each daemon runs in the background in its own session with its
# data, config, log and pid file under $TRELLIS_SERVICES_DIR (default /tmp/trellis-services),
# so this works in containers where systemd is not PID 1 and never touches the system-wide
# instances (/var/lib/postgresql, /var/lib/clickhouse, /var/lib/redis).
#
# `start` is idempotent: a service already running from that directory, or one already answering
# on the port with the credentials the tests use, is left as it is. Concurrent calls are
# serialised by a lock file. The servers are sized for a 2-core machine and for tests, not for
# durability: Redis without persistence, PostgreSQL with fsync off. redis-cluster is a Redis
# Cluster of three masters and no replicas (port TRELLIS_REDIS_CLUSTER_PORT and the next two)
# for the suites that run again on a cluster (TRELLIS_TEST_REDIS_CLUSTER).
#
# Settings (environment):
#   TRELLIS_SERVICES_DIR          where data, config, logs and pid files live [/tmp/trellis-services]
#   TRELLIS_REDIS_PORT            [6379]
#   TRELLIS_REDIS_CLUSTER_PORT    the first of the cluster's three ports [7100]
#   TRELLIS_CLICKHOUSE_PORT       native protocol [9000]
#   TRELLIS_CLICKHOUSE_HTTP_PORT  HTTP interface, for curl while debugging [8123]
#   TRELLIS_POSTGRES_PORT         [5432]
#   TRELLIS_SERVICES_NO_INSTALL=1 never run apt-get; fail if something is missing
#   TRELLIS_APT_UPDATED=1         the caller ran `apt-get update` already; don't run it again
#   TRELLIS_SERVICES_TIMEOUT      seconds to wait for each server to answer [90]

set -euo pipefail

SERVICES_DIR="${TRELLIS_SERVICES_DIR:-/tmp/trellis-services}"
REDIS_PORT="${TRELLIS_REDIS_PORT:-6379}"
RC_PORT="${TRELLIS_REDIS_CLUSTER_PORT:-7100}"
CH_PORT="${TRELLIS_CLICKHOUSE_PORT:-9000}"
CH_HTTP_PORT="${TRELLIS_CLICKHOUSE_HTTP_PORT:-8123}"
PG_PORT="${TRELLIS_POSTGRES_PORT:-5432}"
WAIT_SECONDS="${TRELLIS_SERVICES_TIMEOUT:-90}"

# The role, password and database the PostgreSQL suites connect with.
PG_USER=trellis
PG_PASSWORD=trellis
PG_DB=trellis_test

ALL_SERVICES=(redis redis-cluster clickhouse postgres)

log() { printf '[services] %s\n' "$*" >&2; }
die() {
	printf '[services] ERROR: %s\n' "$*" >&2
	exit 1
}

usage() {
	if [[ ${1:-2} == 0 ]]; then
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	else
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
	fi
	exit "${1:-2}"
}

redis_url() { echo "redis://127.0.0.1:${REDIS_PORT}/0"; }
# The cluster's URL form is Trellis's own (host/redisconn): the seed nodes, comma-separated.
redis_cluster_url() { echo "redis+cluster://127.0.0.1:${RC_PORT},127.0.0.1:$((RC_PORT + 1)),127.0.0.1:$((RC_PORT + 2))"; }
clickhouse_dsn() { echo "clickhouse://127.0.0.1:${CH_PORT}/default"; }
postgres_dsn() { echo "postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${PG_PORT}/${PG_DB}?sslmode=disable"; }

print_env() {
	local s
	for s in "$@"; do
		case "$s" in
		redis) echo "export TRELLIS_TEST_REDIS='$(redis_url)'" ;;
		redis-cluster) echo "export TRELLIS_TEST_REDIS_CLUSTER='$(redis_cluster_url)'" ;;
		clickhouse) echo "export TRELLIS_TEST_CLICKHOUSE='$(clickhouse_dsn)'" ;;
		postgres) echo "export TRELLIS_TEST_POSTGRES='$(postgres_dsn)'" ;;
		esac
	done
}

# ---------------------------------------------------------------------------------------------
# Helpers

as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $* (install the packages by hand, or run as root)"
	fi
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE NAME: the pid in PIDFILE runs and its command name contains NAME
# (guards against a stale pid file whose pid was reused by something else).
pid_alive() {
	local pidfile=$1 name=$2 pid
	[[ -s $pidfile ]] || return 1
	pid=$(head -n1 "$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -q -- "$name" "/proc/$pid/comm" 2>/dev/null || grep -q -- "$name" "/proc/$pid/cmdline" 2>/dev/null
}

# wait_until SECONDS DESCRIPTION CMD...: retry CMD until it succeeds, or fail after SECONDS.
wait_until() {
	local limit=$1 what=$2
	shift 2
	local start=$SECONDS
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS - start >= limit)); then
			return 1
		fi
		sleep 0.2
	done
	log "$what answers ($((SECONDS - start))s)"
}

# stop_pid PIDFILE NAME SIGNAL: signal the process and wait for it to exit (SIGKILL after 60 s).
stop_pid() {
	local pidfile=$1 name=$2 sig=$3 pid i
	if ! pid_alive "$pidfile" "$name"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(head -n1 "$pidfile")
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) did not stop in 60 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$pidfile"
}

show_log_tail() {
	local f
	for f in "$@"; do
		[[ -s $f ]] || continue
		log "last lines of $f:"
		tail -n 30 "$f" | sed 's/^/    /' >&2
	done
}

# ---------------------------------------------------------------------------------------------
# Installation: apt-get, non-interactive, only the packages whose programs are missing.

pg_bindir() {
	local d
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
	[[ -n $d && -x $d/postgres && -x $d/initdb ]] && echo "$d"
}

missing_packages() {
	local s
	for s in "$@"; do
		case "$s" in
		redis | redis-cluster)
			command -v redis-server >/dev/null 2>&1 || echo redis-server
			command -v redis-cli >/dev/null 2>&1 || echo redis-tools
			;;
		clickhouse)
			[[ -x /usr/sbin/clickhouse-server ]] || command -v clickhouse-server >/dev/null 2>&1 || echo clickhouse-server
			command -v clickhouse-client >/dev/null 2>&1 || echo clickhouse-client
			;;
		postgres)
			pg_bindir >/dev/null || echo postgresql
			command -v psql >/dev/null 2>&1 || echo postgresql-client
			;;
		esac
	done
}

install_services() {
	local pkgs=()
	mapfile -t pkgs < <(missing_packages "$@" | sort -u)
	if ((${#pkgs[@]} == 0)); then
		log "all packages present (no install needed)"
		return 0
	fi
	if [[ ${TRELLIS_SERVICES_NO_INSTALL:-} == 1 ]]; then
		die "missing packages: ${pkgs[*]} (and TRELLIS_SERVICES_NO_INSTALL=1)"
	fi
	command -v apt-get >/dev/null 2>&1 || die "missing packages: ${pkgs[*]}, and no apt-get to install them with"
	local t0=$SECONDS aptlog
	aptlog=$(mktemp /tmp/trellis-apt.XXXXXX)
	log "installing: ${pkgs[*]}"
	if [[ ${TRELLIS_APT_UPDATED:-} == 1 ]]; then
		log "apt-get update: already done by the caller (TRELLIS_APT_UPDATED=1)"
	else
		log "apt-get update"
		if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$aptlog" 2>&1; then
			show_log_tail "$aptlog"
			die "apt-get update failed"
		fi
	fi
	local p policy missing_candidates=()
	for p in "${pkgs[@]}"; do
		# A package with no candidate cannot be installed from the configured sources at all.
		# (captured first: grep -q closing the pipe early would fail the pipeline under pipefail)
		policy=$(apt-cache policy "$p" 2>/dev/null || true)
		if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
			missing_candidates+=("$p")
		fi
	done
	if ((${#missing_candidates[@]})); then
		log "########################################################################"
		log "#  The configured apt sources offer no installable version of:"
		log "#      ${missing_candidates[*]}"
		log "#  (see /etc/apt/sources.list and /etc/apt/sources.list.d/)."
		log "#  Debian 12 (bookworm) main ships clickhouse-server/-client 18.16.1,"
		log "#  redis-server 7.0 and postgresql 15. These backends cannot be started."
		log "########################################################################"
		die "cannot install: ${missing_candidates[*]}"
	fi
	# policy-rc.d / no systemd: the packages' own service start is refused or skipped, which is
	# what we want; we start our own instances below.
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${pkgs[@]}" >>"$aptlog" 2>&1; then
		show_log_tail "$aptlog"
		die "apt-get install ${pkgs[*]} failed"
	fi
	rm -f "$aptlog"
	log "installed ${pkgs[*]} in $((SECONDS - t0))s"
	# Debian's packages may have started their own instances where an init system allowed it;
	# those would hold our ports. Stop the ones that just came in with this install.
	stop_system_instances "${pkgs[@]}"
}

stop_system_instances() {
	local p
	for p in "$@"; do
		case "$p" in
		redis-server | clickhouse-server | postgresql)
			if [[ -d /run/systemd/system ]]; then
				as_root systemctl stop "${p}" >/dev/null 2>&1 || true
				as_root systemctl disable "${p}" >/dev/null 2>&1 || true
			fi
			;;
		esac
	done
}

# ---------------------------------------------------------------------------------------------
# Redis

REDIS_DIR="$SERVICES_DIR/redis"

redis_answers() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_start() {
	if pid_alive "$REDIS_DIR/redis.pid" redis-server; then
		wait_until "$WAIT_SECONDS" "redis (already running, port $REDIS_PORT)" redis_answers ||
			die "redis runs (pid $(cat "$REDIS_DIR/redis.pid")) but does not answer on $REDIS_PORT"
		return 0
	fi
	if port_open "$REDIS_PORT"; then
		redis_answers || die "port $REDIS_PORT is taken by something that is not Redis; set TRELLIS_REDIS_PORT"
		log "redis: using the Redis already listening on 127.0.0.1:$REDIS_PORT (not started by this script)"
		return 0
	fi
	mkdir -p "$REDIS_DIR/data"
	# No persistence (tests), bounded memory, no protected-mode surprises on loopback.
	cat >"$REDIS_DIR/redis.conf" <<EOF
# written by scripts/services.sh
bind 127.0.0.1
port $REDIS_PORT
protected-mode no
daemonize no
dir $REDIS_DIR/data
save ""
appendonly no
maxmemory 1gb
maxmemory-policy noeviction
io-threads 1
databases 16
loglevel notice
EOF
	log "starting redis on 127.0.0.1:$REDIS_PORT"
	setsid redis-server "$REDIS_DIR/redis.conf" </dev/null >>"$REDIS_DIR/redis.log" 2>&1 9>&- &
	echo $! >"$REDIS_DIR/redis.pid"
	if ! wait_until "$WAIT_SECONDS" "redis (port $REDIS_PORT)" redis_answers; then
		show_log_tail "$REDIS_DIR/redis.log"
		die "redis did not answer within ${WAIT_SECONDS}s"
	fi
}

redis_stop() {
	if pid_alive "$REDIS_DIR/redis.pid" redis-server; then
		log "stopping redis"
		stop_pid "$REDIS_DIR/redis.pid" redis-server TERM
	else
		rm -f "$REDIS_DIR/redis.pid"
	fi
}

redis_status() {
	if redis_answers; then
		local v
		v=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
		log "redis: up on 127.0.0.1:$REDIS_PORT (version $v$(pid_alive "$REDIS_DIR/redis.pid" redis-server && echo ", pid $(cat "$REDIS_DIR/redis.pid")"))"
	else
		log "redis: down"
		return 1
	fi
}

# ---------------------------------------------------------------------------------------------
# Redis Cluster: three masters, no replicas, on RC_PORT..RC_PORT+2, one directory per node.
# The slots are assigned once (`redis-cli --cluster create`); each node keeps the layout in its
# nodes.conf, so a stop and a start bring the same cluster back (empty: no persistence).

RC_DIR="$SERVICES_DIR/redis-cluster"

rc_ports() { echo "$RC_PORT" "$((RC_PORT + 1))" "$((RC_PORT + 2))"; }

rc_node_answers() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }

# rc_info PORT FIELD: a field of CLUSTER INFO on that node.
rc_info() { redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# rc_ok: every node sees the whole cluster (state ok, every slot assigned, three nodes).
rc_ok() {
	local p
	for p in $(rc_ports); do
		[[ "$(rc_info "$p" cluster_state)" == ok ]] || return 1
		[[ "$(rc_info "$p" cluster_slots_assigned)" == 16384 ]] || return 1
		[[ "$(rc_info "$p" cluster_known_nodes)" == 3 ]] || return 1
	done
}

redis_cluster_start() {
	local p started=0
	for p in $(rc_ports); do
		local d="$RC_DIR/$p"
		if pid_alive "$d/redis.pid" redis-server; then
			continue
		fi
		if port_open "$p"; then
			if redis-cli -h 127.0.0.1 -p "$p" info cluster 2>/dev/null | tr -d '\r' | grep -qx 'cluster_enabled:1'; then
				log "redis-cluster: using the cluster node already listening on 127.0.0.1:$p (not started by this script)"
				continue
			fi
			die "port $p is taken by something that is not a Redis Cluster node; set TRELLIS_REDIS_CLUSTER_PORT"
		fi
		mkdir -p "$d"
		cat >"$d/redis.conf" <<EOF
# written by scripts/services.sh: one master of the test cluster
bind 127.0.0.1
port $p
protected-mode no
daemonize no
dir $d
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 5000
save ""
appendonly no
maxmemory 256mb
maxmemory-policy noeviction
io-threads 1
loglevel notice
EOF
		log "starting redis cluster node on 127.0.0.1:$p"
		(cd "$d" && exec setsid redis-server "$d/redis.conf" </dev/null >>"$d/redis.log" 2>&1 9>&-) &
		echo $! >"$d/redis.pid"
		started=1
	done
	for p in $(rc_ports); do
		if ! wait_until "$WAIT_SECONDS" "redis cluster node (port $p)" rc_node_answers "$p"; then
			show_log_tail "$RC_DIR/$p/redis.log"
			die "redis cluster node on $p did not answer within ${WAIT_SECONDS}s"
		fi
	done
	if rc_ok; then
		return 0
	fi
	# Fresh nodes (no slot assigned, each alone) are made into a cluster; nodes that know a
	# layout (the nodes.conf of an earlier start) find each other again on their own.
	if [[ "$(rc_info "$RC_PORT" cluster_slots_assigned)" == 0 && "$(rc_info "$RC_PORT" cluster_known_nodes)" == 1 ]]; then
		local addrs=()
		for p in $(rc_ports); do addrs+=("127.0.0.1:$p"); done
		log "redis-cluster: creating the cluster over ${addrs[*]}"
		if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$RC_DIR/create.log" 2>&1; then
			show_log_tail "$RC_DIR/create.log"
			die "redis-cli --cluster create failed (scripts/services.sh reset redis-cluster starts afresh)"
		fi
	elif ((started)); then
		log "redis-cluster: nodes restarted from their nodes.conf; waiting for them to agree"
	fi
	if ! wait_until "$WAIT_SECONDS" "redis-cluster (state ok on every node)" rc_ok; then
		for p in $(rc_ports); do
			log "node $p: state $(rc_info "$p" cluster_state), slots $(rc_info "$p" cluster_slots_assigned), nodes $(rc_info "$p" cluster_known_nodes)"
		done
		die "the redis cluster did not become healthy within ${WAIT_SECONDS}s (scripts/services.sh reset redis-cluster starts afresh)"
	fi
}

redis_cluster_stop() {
	local p
	for p in $(rc_ports); do
		if pid_alive "$RC_DIR/$p/redis.pid" redis-server; then
			log "stopping redis cluster node $p"
			stop_pid "$RC_DIR/$p/redis.pid" redis-server TERM
		else
			rm -f "$RC_DIR/$p/redis.pid"
		fi
	done
}

redis_cluster_status() {
	if rc_ok; then
		local v
		v=$(redis-cli -h 127.0.0.1 -p "$RC_PORT" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
		log "redis-cluster: up on 127.0.0.1:$(rc_ports | tr ' ' ',') (3 masters, version $v)"
	else
		log "redis-cluster: down (or not a healthy 3-master cluster)"
		return 1
	fi
}

# ---------------------------------------------------------------------------------------------
# ClickHouse (Debian's 18.16: one binary, configured by our own config.xml and users.xml)

CH_DIR="$SERVICES_DIR/clickhouse"

clickhouse_server_bin() {
	if [[ -x /usr/sbin/clickhouse-server ]]; then echo /usr/sbin/clickhouse-server; else command -v clickhouse-server; fi
}

clickhouse_answers() {
	[[ "$(clickhouse-client --host 127.0.0.1 --port "$CH_PORT" --query 'SELECT 1' 2>/dev/null)" == 1 ]]
}

clickhouse_write_config() {
	mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
	# Only 127.0.0.1 (no ::1: IPv6 may be absent in containers). Small caches, few threads:
	# this is a 2-core test machine. No query_log/part_log. Server time zone pinned to UTC so
	# tests do not depend on the machine's.
	cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- written by scripts/services.sh: ClickHouse for Trellis's tests -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$CH_DIR/log/clickhouse-server.log</log>
        <errorlog>$CH_DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$CH_PORT</tcp_port>
    <http_port>$CH_HTTP_PORT</http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>134217728</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
	cat >"$CH_DIR/users.xml" <<EOF
<?xml version="1.0"?>
<!-- written by scripts/services.sh -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
            <log_queries>0</log_queries>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

clickhouse_start() {
	if pid_alive "$CH_DIR/clickhouse.pid" clickhouse; then
		wait_until "$WAIT_SECONDS" "clickhouse (already running, port $CH_PORT)" clickhouse_answers ||
			die "clickhouse runs (pid $(cat "$CH_DIR/clickhouse.pid")) but does not answer on $CH_PORT"
		return 0
	fi
	if port_open "$CH_PORT"; then
		clickhouse_answers || die "port $CH_PORT is taken by something that is not ClickHouse; set TRELLIS_CLICKHOUSE_PORT"
		log "clickhouse: using the ClickHouse already listening on 127.0.0.1:$CH_PORT (not started by this script)"
		return 0
	fi
	if port_open "$CH_HTTP_PORT"; then
		die "port $CH_HTTP_PORT (ClickHouse HTTP) is taken; set TRELLIS_CLICKHOUSE_HTTP_PORT"
	fi
	local bin
	bin=$(clickhouse_server_bin) || die "clickhouse-server is not installed"
	clickhouse_write_config
	log "starting clickhouse on 127.0.0.1:$CH_PORT (native) and :$CH_HTTP_PORT (http)"
	# Run from the data dir: the server writes preprocessed configs and status files beside it.
	(cd "$CH_DIR" && exec setsid "$bin" --config-file="$CH_DIR/config.xml" \
		</dev/null >>"$CH_DIR/log/stdout.log" 2>&1 9>&-) &
	echo $! >"$CH_DIR/clickhouse.pid"
	if ! wait_until "$WAIT_SECONDS" "clickhouse (port $CH_PORT)" clickhouse_answers; then
		show_log_tail "$CH_DIR/log/stdout.log" "$CH_DIR/log/clickhouse-server.err.log"
		die "clickhouse did not answer within ${WAIT_SECONDS}s"
	fi
}

clickhouse_stop() {
	if pid_alive "$CH_DIR/clickhouse.pid" clickhouse; then
		log "stopping clickhouse"
		stop_pid "$CH_DIR/clickhouse.pid" clickhouse TERM
	else
		rm -f "$CH_DIR/clickhouse.pid"
	fi
}

clickhouse_status() {
	if clickhouse_answers; then
		local v
		v=$(clickhouse-client --host 127.0.0.1 --port "$CH_PORT" --query 'SELECT version()' 2>/dev/null)
		log "clickhouse: up on 127.0.0.1:$CH_PORT (version $v$(pid_alive "$CH_DIR/clickhouse.pid" clickhouse && echo ", pid $(cat "$CH_DIR/clickhouse.pid")"))"
	else
		log "clickhouse: down"
		return 1
	fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL (its own cluster in $SERVICES_DIR/postgres; as root the server runs as `postgres`,
# because PostgreSQL refuses to run as root)

PG_DIR="$SERVICES_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"

pg_user() { if [[ $EUID -eq 0 ]]; then echo postgres; else id -un; fi; }

# as_pg CMD...: run CMD as the cluster's owner, with no inherited lock descriptor.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@" 9>&-
	else
		"$@" 9>&-
	fi
}

pg_answers() { [[ "$(psql "$(postgres_dsn)" -XAtqc 'select 1' 2>/dev/null)" == 1 ]]; }
pg_admin_answers() { [[ "$(as_pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -XAtqc 'select 1' 2>/dev/null)" == 1 ]]; }
# The postmaster's pid is the first line of postmaster.pid; checking its command name (not just
# kill -0, as pg_ctl status does) avoids taking a reused pid for a server after a hard kill.
pg_running() { pid_alive "$PG_DATA/postmaster.pid" postgres; }

postgres_start() {
	local bindir
	if pg_running; then
		if ! pg_answers; then
			wait_until "$WAIT_SECONDS" "postgres admin socket" pg_admin_answers ||
				die "postgres runs (data $PG_DATA) but its socket in $PG_SOCK does not answer"
			pg_create_role_db
			wait_until "$WAIT_SECONDS" "postgres (port $PG_PORT, as $PG_USER)" pg_answers ||
				die "postgres runs but $(postgres_dsn) does not connect"
		fi
		log "postgres: already running on 127.0.0.1:$PG_PORT"
		return 0
	fi
	if port_open "$PG_PORT"; then
		pg_answers || die "port $PG_PORT is taken by a server where $(postgres_dsn) does not connect; set TRELLIS_POSTGRES_PORT (or create that role and database there)"
		log "postgres: using the PostgreSQL already listening on 127.0.0.1:$PG_PORT (not started by this script)"
		return 0
	fi
	bindir=$(pg_bindir) || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
	if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
		die "user 'postgres' does not exist (it comes with Debian's postgresql-common package)"
	fi
	mkdir -p "$PG_DIR"
	chmod 755 "$SERVICES_DIR" "$PG_DIR"
	if [[ ! -s $PG_DATA/PG_VERSION ]]; then
		log "initdb $PG_DATA"
		rm -rf "$PG_DATA"
		mkdir -p "$PG_DATA" "$PG_SOCK"
		if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$PG_DATA" "$PG_SOCK"; fi
		chmod 700 "$PG_DATA"
		# Local socket: trust (admin work of this script); TCP: passwords, as the tests' DSN.
		if ! as_pg "$bindir/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
			--encoding=UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1; then
			show_log_tail "$PG_DIR/initdb.log"
			die "initdb failed"
		fi
		# Test settings: fast and small, not durable.
		cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- written by scripts/services.sh (test cluster: fast, small, not durable) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
timezone = 'UTC'
log_timezone = 'UTC'
EOF
	fi
	# Left behind by a server that was killed (e.g. with the session that started it): a stale
	# lock whose pid now belongs to another process would make the postmaster refuse to start.
	rm -f "$PG_DATA/postmaster.pid" "$PG_SOCK"/.s.PGSQL.*
	mkdir -p "$PG_SOCK"
	if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$PG_SOCK"; fi
	if [[ $EUID -eq 0 ]]; then touch "$PG_DIR/postgres.log" && chown postgres:postgres "$PG_DIR/postgres.log"; fi
	log "starting postgres on 127.0.0.1:$PG_PORT"
	# pg_ctl detaches the postmaster (own session via setsid, stdio to the log) and -w waits
	# until it accepts connections.
	if ! as_pg setsid "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -o "-p $PG_PORT" \
		-w -t "$WAIT_SECONDS" start </dev/null >"$PG_DIR/pg_ctl.log" 2>&1; then
		show_log_tail "$PG_DIR/pg_ctl.log" "$PG_DIR/postgres.log"
		die "postgres did not start"
	fi
	wait_until "$WAIT_SECONDS" "postgres admin socket" pg_admin_answers || {
		show_log_tail "$PG_DIR/postgres.log"
		die "postgres started but its socket in $PG_SOCK does not answer"
	}
	pg_create_role_db
	if ! wait_until "$WAIT_SECONDS" "postgres (port $PG_PORT, as $PG_USER)" pg_answers; then
		show_log_tail "$PG_DIR/postgres.log"
		die "postgres does not accept $(postgres_dsn)"
	fi
}

# The tests' role may create databases (a suite may want one per test) and owns its database.
pg_create_role_db() {
	as_pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 >/dev/null <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB')
\gexec
EOF
}

postgres_stop() {
	local bindir
	bindir=$(pg_bindir) || return 0
	if pg_running; then
		log "stopping postgres"
		as_pg "$bindir/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			as_pg "$bindir/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	fi
}

postgres_status() {
	if pg_answers; then
		local v
		v=$(psql "$(postgres_dsn)" -XAtqc 'show server_version' 2>/dev/null)
		log "postgres: up on 127.0.0.1:$PG_PORT (version $v$(pg_running && echo ", data $PG_DATA"))"
	else
		log "postgres: down (or $(postgres_dsn) does not connect)"
		return 1
	fi
}

# ---------------------------------------------------------------------------------------------

main() {
	local cmd=${1:-}
	[[ -n $cmd ]] || usage
	shift
	case "$cmd" in -h | --help | help) usage 0 ;; esac
	local services=("$@") s
	((${#services[@]})) || services=("${ALL_SERVICES[@]}")
	for s in "${services[@]}"; do
		case "$s" in
		redis | redis-cluster | clickhouse | postgres) ;;
		*) die "unknown service '$s' (want: ${ALL_SERVICES[*]})" ;;
		esac
	done

	case "$cmd" in
	env)
		print_env "${services[@]}"
		return 0
		;;
	install | start | stop | status | reset) ;;
	-h | --help | help) usage 0 ;;
	*) usage ;;
	esac

	mkdir -p "$SERVICES_DIR"
	chmod 755 "$SERVICES_DIR" 2>/dev/null || true
	# One caller at a time: several engineers (or CI and a developer) may run this at once.
	exec 9>"$SERVICES_DIR/.lock"
	if ! flock -w 600 9; then
		die "could not take $SERVICES_DIR/.lock within 10 minutes"
	fi

	local rc=0 t0
	case "$cmd" in
	install)
		install_services "${services[@]}"
		;;
	start)
		install_services "${services[@]}"
		for s in "${services[@]}"; do
			t0=$SECONDS
			"${s//-/_}_start"
			log "$s ready ($((SECONDS - t0))s)"
		done
		print_env "${services[@]}"
		;;
	stop)
		for s in "${services[@]}"; do "${s//-/_}_stop"; done
		;;
	reset)
		for s in "${services[@]}"; do
			"${s//-/_}_stop"
			log "deleting the data of $s"
			case "$s" in
			redis) rm -rf "$REDIS_DIR" ;;
			redis-cluster) rm -rf "$RC_DIR" ;;
			clickhouse) rm -rf "$CH_DIR" ;;
			postgres) rm -rf "$PG_DIR" ;;
			esac
		done
		install_services "${services[@]}"
		for s in "${services[@]}"; do "${s//-/_}_start"; done
		print_env "${services[@]}"
		;;
	status)
		for s in "${services[@]}"; do "${s//-/_}_status" || rc=1; done
		;;
	esac
	return $rc
}

main "$@"
