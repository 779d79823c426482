# Sourced by .ci/run (and usable by hand: `source .ci/postgres.sh &&
# start_test_postgres`): starts a throwaway Postgres cluster for the tests of
# relay/postgres and exports HOOKMAIL_TEST_POSTGRES_URL, an admin URL with a
# password. The tests create a database and a role of their own in it for
# each test. The cluster lives in a temp dir and is stopped and deleted on
# exit.
#
# A test that stops and starts Postgres under hookmail starts a cluster of
# its own with the same functions (relay/postgres/pgtest.NewCluster):
# launch_test_postgres, then postgres_down and postgres_up, then
# stop_test_postgres, each in a shell of its own with PG_TEST_DIR set.
#
# Postgres refuses to run as root, and CI runs as root: then the cluster runs
# as the system user hookmail-ci, created when missing.

# pg_bindir prints the newest installed Postgres' bin directory, installing
# Debian's postgresql package first when there is none.
pg_bindir() {
	local dir
	dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -z "$dir" ] && ! command -v initdb >/dev/null 2>&1; then
		echo "== installing postgresql (apt-get)" >&2
		# Only the binaries are wanted: no cluster of the package's own.
		mkdir -p /etc/postgresql-common/createcluster.d
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/hookmail-ci.conf
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
		dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	fi
	if [ -z "$dir" ]; then
		dir=$(dirname "$(command -v initdb)")
	fi
	echo "$dir"
}

# as_pg_user runs a command as the cluster's user, from its directory.
as_pg_user() {
	if [ "$(id -u)" = 0 ]; then
		(cd "$PG_TEST_DIR" && runuser -u hookmail-ci -- "$@")
	else
		(cd "$PG_TEST_DIR" && "$@")
	fi
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now,
# below the kernel's ephemeral range: a port in that range can be taken by
# any outgoing connection's local end, such as a test's HTTP client's, while
# a cluster is stopped, and then Postgres cannot start on it again.
free_port() {
	local port low=32768 high
	if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
		read -r low high </proc/sys/net/ipv4/ip_local_port_range
	fi
	if [ "$low" -le 11000 ]; then
		low=60000 # an unusual range: any port will do
	fi
	for _ in $(seq 1 100); do
		port=$((10000 + RANDOM % (low - 10000)))
		if ! (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

# pg_path puts the Postgres binaries on PATH.
pg_path() {
	local bindir
	bindir=$(pg_bindir)
	export PATH="$bindir:$PATH"
}

# start_test_postgres starts a cluster for this shell (launch_test_postgres),
# stopped and deleted when the shell exits.
start_test_postgres() {
	trap stop_test_postgres EXIT
	launch_test_postgres
}

# launch_test_postgres makes a cluster in a new temp dir (PG_TEST_DIR) and
# starts it on 127.0.0.1 at a free port, exporting its admin URL as
# HOOKMAIL_TEST_POSTGRES_URL. It outlives the shell: stop_test_postgres
# stops and deletes it.
launch_test_postgres() {
	local password port
	pg_path
	if [ "$(id -u)" = 0 ] && ! id hookmail-ci >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin hookmail-ci
	fi
	PG_TEST_DIR=$(mktemp -d /tmp/hookmail-pg.XXXXXX)
	password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$password" >"$PG_TEST_DIR/pwfile"
	if [ "$(id -u)" = 0 ]; then
		chown -R hookmail-ci "$PG_TEST_DIR"
	fi
	# Unix-socket connections are trusted (only the cluster's user can
	# reach its socket directory); TCP ones need the password.
	as_pg_user initdb -D "$PG_TEST_DIR/data" -U hookmail_admin --pwfile="$PG_TEST_DIR/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync >"$PG_TEST_DIR/initdb.log"
	rm -f "$PG_TEST_DIR/pwfile"
	# A port taken between the check and the start makes pg_ctl fail: try
	# another.
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		if postgres_up "$port"; then
			export HOOKMAIL_TEST_POSTGRES_URL="postgres://hookmail_admin:$password@127.0.0.1:$port/postgres?sslmode=disable"
			echo "== postgres $(postgres --version | awk '{print $3}') on 127.0.0.1:$port (data in $PG_TEST_DIR)"
			return 0
		fi
	done
	return 1
}

# postgres_up PORT starts the cluster in PG_TEST_DIR on 127.0.0.1:PORT and
# waits until it takes connections. Durability is traded for speed
# (fsync, synchronous_commit and full_page_writes off): a commit survives
# postgres_down, which shuts down cleanly, but not a crash. PG_TEST_OPTIONS
# (e.g. "-c fsync=on") comes after these and wins over them: the benchmark
# measures a durable cluster.
# When it fails, the end of Postgres' log says why, on stderr.
postgres_up() {
	pg_path
	if ! as_pg_user pg_ctl -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/postgres.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories=$PG_TEST_DIR -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${PG_TEST_OPTIONS:-}" \
		start >/dev/null; then
		echo "== postgres did not start on 127.0.0.1:$1; the end of its log:" >&2
		tail -n 5 "$PG_TEST_DIR/postgres.log" >&2 || true
		return 1
	fi
}

# postgres_down stops the cluster in PG_TEST_DIR as a restart for an
# upgrade does (fast: sessions are ended, commits are written out) and
# keeps its data.
postgres_down() {
	pg_path
	as_pg_user pg_ctl -D "$PG_TEST_DIR/data" -m fast -w -t 60 stop >/dev/null
}

# stop_test_postgres stops the cluster in PG_TEST_DIR at once and deletes
# it.
stop_test_postgres() {
	if [ -n "${PG_TEST_DIR:-}" ] && [ -d "$PG_TEST_DIR" ]; then
		pg_path
		as_pg_user pg_ctl -D "$PG_TEST_DIR/data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$PG_TEST_DIR"
	fi
}
