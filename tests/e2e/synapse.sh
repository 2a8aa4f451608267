#!/usr/bin/env bash
# synapse.sh: run a real Synapse (matrix-synapse 1.163.*) on loopback for oxisd's end-to-end tests.
#
# Usage:
#   tests/e2e/synapse.sh install                  create/refresh the cached venv
#   tests/e2e/synapse.sh start                    write config, start Synapse, print its settings.
#                                                 Always a fresh instance: a Synapse still running from
#                                                 an earlier start is stopped, its state wiped; a stale
#                                                 PID file (crash) is removed.
#   tests/e2e/synapse.sh stop                     stop the Synapse started by `start` (by PID file only,
#                                                 and only if that PID is a Synapse); safe if none runs
#   tests/e2e/synapse.sh status                   exit 0 if it runs
#   tests/e2e/synapse.sh register USER PASS [admin]   create a user with the shared secret
#   tests/e2e/synapse.sh env                      print the settings of the running instance
#
# Environment (all optional):
#   E2E_HOME       build area for the venv and run state; default <repo>/target/e2e (ignored by git).
#                  venv:  $E2E_HOME/venv      (cached between runs)
#                  state: $E2E_HOME/run/synapse/ (config, keys, cert, SQLite db, log; wiped by `start`)
#                  PID:   $E2E_HOME/run/synapse.pid   settings: $E2E_HOME/run/synapse.env
#   PYTHON         interpreter for the venv; default python3.11 if present, else python3.
#   OXISD_URL      full URL of oxisd (e.g. http://127.0.0.1:8090). When set, Synapse delegates
#                  phone-number validation to it: account_threepid_delegates.msisdn = $OXISD_URL
#                  (Synapse then calls $OXISD_URL/_matrix/identity/api/v1/validate/msisdn/...).
#   SMTP_PORT      port of a test SMTP sink on 127.0.0.1. When set, an `email:` section is written
#                  (smtp_host 127.0.0.1, no TLS, notifications off) so Synapse can send its own
#                  mails (password reset / email validation it does itself). Not needed for
#                  3PID room invites: those mails are sent by the identity server, not Synapse.
#   OXISD_AUTH_URL base URL of oxisd's auth listener (e.g. http://127.0.0.1:8092). When set, the
#                  module contrib/synapse/oxisd_auth_provider.py is loaded (`modules:` entry,
#                  contrib/synapse on Synapse's PYTHONPATH): password logins are checked by
#                  oxisd's check_credentials, directory users are created on first login.
#   OXISD_AUTH_SECRET  the module's shared_secret (oxisd's auth.sharedSecret); only with
#                  OXISD_AUTH_URL.
#   SYNAPSE_CLIENT_PORT, SYNAPSE_FED_PORT
#                  fixed ports instead of picking free loopback ports (a fixed SYNAPSE_FED_PORT
#                  makes the server name 127.0.0.1:<port> known before Synapse starts).
#   SYNAPSE_START_TIMEOUT  seconds to wait for /_matrix/client/versions; default 60.
#
# Identity-server settings: none are needed in homeserver.yaml for bind/unbind/3PID invites in
# Synapse 1.163: clients pass id_server ("host:port", always reached over https) and
# id_access_token per request. use_insecure_ssl_client_just_for_testing_do_not_use: true makes
# Synapse accept oxisd's self-signed certificate, and ip_range_whitelist lets it reach 127.0.0.1.
#
# `start` prints (and writes to synapse.env) lines:
#   SYNAPSE_CLIENT_URL=http://127.0.0.1:<clientport>
#   SYNAPSE_FED_PORT=<fedport>            (TLS: federation + openid + key resources)
#   SYNAPSE_SERVER_NAME=127.0.0.1:<fedport>
#   SYNAPSE_SHARED_SECRET=<registration shared secret>
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
E2E_HOME="${E2E_HOME:-$REPO_ROOT/target/e2e}"
VENV="$E2E_HOME/venv"
RUN="$E2E_HOME/run"
DATA="$RUN/synapse"
PIDFILE="$RUN/synapse.pid"
ENVFILE="$RUN/synapse.env"
SYNAPSE_SPEC='matrix-synapse==1.163.*'
SYNAPSE_MINOR='1.163.'

log() { echo "synapse.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  if command -v python3.11 >/dev/null 2>&1 && python3.11 -c 'import venv' >/dev/null 2>&1; then
    echo python3.11
  else
    echo python3
  fi
}

installed_version() {
  [[ -x "$VENV/bin/python" ]] || return 1
  # importlib.metadata, not synapse.__version__: the latter appends `git describe` of
  # whatever repo the venv sits in (ours, under target/).
  "$VENV/bin/python" -c 'import synapse, importlib.metadata as m; print(m.version("matrix-synapse"))' 2>/dev/null
}

cmd_install() {
  local v
  if v="$(installed_version)" && [[ "$v" == "$SYNAPSE_MINOR"* ]]; then
    log "Synapse $v already installed in $VENV"
    return 0
  fi
  local py; py="$(pick_python)"
  command -v "$py" >/dev/null 2>&1 || die "no $py found"
  log "creating venv $VENV with $py ($("$py" --version 2>&1))"
  rm -rf "$VENV"
  mkdir -p "$E2E_HOME"
  "$py" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "$SYNAPSE_SPEC"
  v="$(installed_version)" || die "synapse does not import after install"
  [[ "$v" == "$SYNAPSE_MINOR"* ]] || die "installed Synapse $v, expected $SYNAPSE_MINOR*"
  log "installed Synapse $v"
}

# Process in the PID file, if it is alive and is a Synapse homeserver (guards against PID reuse).
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'synapse.app.homeserver' || return 1
  fi
  echo "$pid"
}

# Free TCP port on 127.0.0.1, not in the list given as arguments.
free_port() {
  "$(pick_python)" - "$@" <<'EOF'
import socket, sys
avoid = {int(a) for a in sys.argv[1:]}
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    if p not in avoid:
        print(p)
        break
EOF
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    if [[ -f "$PIDFILE" ]]; then log "removing stale PID file"; rm -f "$PIDFILE"; fi
    rm -f "$ENVFILE"
    log "Synapse is not running"
    return 0
  fi
  log "stopping Synapse (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 10 s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE" "$ENVFILE"
  log "stopped"
}

yaml_str() { # single-quoted YAML scalar
  printf "'%s'" "${1//\'/\'\'}"
}

write_config() {
  local client_port="$1" fed_port="$2" secret="$3"
  local server_name="127.0.0.1:$fed_port"
  {
    cat <<EOF
# Generated by tests/e2e/synapse.sh: loopback-only test homeserver. Do not use in production.
server_name: "$server_name"
public_baseurl: "http://127.0.0.1:$client_port/"
report_stats: false
signing_key_path: "$DATA/signing.key"
log_config: "$DATA/log.config"
media_store_path: "$DATA/media_store"
serve_server_wellknown: false
suppress_key_server_warning: true
trusted_key_servers: []
federation_domain_whitelist: []
url_preview_enabled: false
enable_metrics: false
presence:
  enabled: false

tls_certificate_path: "$DATA/tls.crt"
tls_private_key_path: "$DATA/tls.key"

listeners:
  - port: $client_port
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
  - port: $fed_port
    bind_addresses: ['127.0.0.1']
    type: http
    tls: true
    resources:
      - names: [federation, openid]
        compress: false

database:
  name: sqlite3
  args:
    database: "$DATA/homeserver.db"

# Outbound requests (identity server, federation) go to loopback only.
ip_range_whitelist: ['127.0.0.1/32']
use_insecure_ssl_client_just_for_testing_do_not_use: true
federation_verify_certificates: false

enable_registration: false
registration_shared_secret: $(yaml_str "$secret")
macaroon_secret_key: $(yaml_str "$(rand_hex 32)")
form_secret: $(yaml_str "$(rand_hex 32)")
enable_3pid_changes: true
bcrypt_rounds: 4   # fast password hashing on a shared CI machine

# Generous rate limits: the tests must not hit 429.
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_registration_token_validity: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_admin_redaction: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_joins_per_room: {per_second: 1000, burst_count: 1000}
rc_3pid_validation: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
  per_issuer: {per_second: 1000, burst_count: 1000}
rc_third_party_invite: {per_second: 1000, burst_count: 1000}
rc_federation:
  window_size: 1000
  sleep_limit: 1000
  sleep_delay: 0
  reject_limit: 1000
  concurrent: 1000
rc_key_requests: {per_second: 1000, burst_count: 1000}
rc_media_create: {per_second: 1000, burst_count: 1000}
rc_delayed_event_mgmt: {per_second: 1000, burst_count: 1000}
rc_room_creation: {per_second: 1000, burst_count: 1000}
rc_reports: {per_second: 1000, burst_count: 1000}
rc_user_directory: {per_second: 1000, burst_count: 1000}
rc_profile: {per_second: 1000, burst_count: 1000}
rc_presence:
  per_user: {per_second: 1000, burst_count: 1000}
EOF
    if [[ -n "${OXISD_URL:-}" ]]; then
      cat <<EOF

account_threepid_delegates:
  msisdn: $(yaml_str "$OXISD_URL")
EOF
    fi
    if [[ -n "${SMTP_PORT:-}" ]]; then
      cat <<EOF

email:
  smtp_host: 127.0.0.1
  smtp_port: $SMTP_PORT
  force_tls: false
  require_transport_security: false
  enable_tls: false
  notif_from: "Synapse test <synapse@127.0.0.1>"
  app_name: Matrix
  enable_notifs: false
  notif_for_new_users: false
EOF
    fi
    if [[ -n "${OXISD_AUTH_URL:-}" ]]; then
      cat <<EOF

modules:
  - module: oxisd_auth_provider.OxisdAuthProvider
    config:
      endpoint: $(yaml_str "$OXISD_AUTH_URL")
      timeout: 10
      update_profile: true
EOF
      if [[ -n "${OXISD_AUTH_SECRET:-}" ]]; then
        echo "      shared_secret: $(yaml_str "$OXISD_AUTH_SECRET")"
      fi
    fi
  } >"$DATA/homeserver.yaml"

  cat >"$DATA/log.config" <<EOF
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "$DATA/homeserver.log"
    encoding: utf8
loggers:
  synapse.storage.SQL:
    level: INFO
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
EOF
}

rand_hex() { openssl rand -hex "$1"; }

make_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
    -keyout "$DATA/tls.key" -out "$DATA/tls.crt" \
    -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" >/dev/null 2>&1 \
    || die "openssl could not create the self-signed certificate"
}

cmd_start() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found"
  command -v curl >/dev/null 2>&1 || die "curl not found"
  local v
  v="$(installed_version)" || die "Synapse is not installed: run '$0 install' first"
  [[ "$v" == "$SYNAPSE_MINOR"* ]] || die "Synapse $v in $VENV, expected $SYNAPSE_MINOR*: run '$0 install'"

  local pid
  if pid="$(running_pid)"; then
    log "Synapse already running (pid $pid): stopping it for a fresh start"
    cmd_stop
  elif [[ -f "$PIDFILE" ]]; then
    log "removing stale PID file $PIDFILE"
    rm -f "$PIDFILE"
  fi

  rm -rf "$DATA" "$ENVFILE"
  mkdir -p "$DATA/media_store"

  local client_port="${SYNAPSE_CLIENT_PORT:-}" fed_port="${SYNAPSE_FED_PORT:-}"
  [[ -n "$client_port" ]] || client_port="$(free_port ${fed_port:+"$fed_port"})"
  [[ -n "$fed_port" ]] || fed_port="$(free_port "$client_port")"
  local server_name="127.0.0.1:$fed_port"
  local secret; secret="$(rand_hex 24)"
  # The auth module (OXISD_AUTH_URL) is imported from contrib/synapse.
  if [[ -n "${OXISD_AUTH_URL:-}" ]]; then
    export PYTHONPATH="$REPO_ROOT/contrib/synapse${PYTHONPATH:+:$PYTHONPATH}"
  elif [[ -n "${OXISD_AUTH_SECRET:-}" ]]; then
    die "OXISD_AUTH_SECRET is set but OXISD_AUTH_URL is not"
  fi

  make_cert
  write_config "$client_port" "$fed_port" "$secret"
  "$VENV/bin/python" -m synapse.app.homeserver -c "$DATA/homeserver.yaml" --generate-keys \
    >"$DATA/generate-keys.out" 2>&1 \
    || { cat "$DATA/generate-keys.out" >&2; die "could not generate the signing key"; }

  log "starting Synapse $v: client http://127.0.0.1:$client_port, federation https://$server_name"
  # setsid: own process group, so the caller's Ctrl-C / job control does not hit it.
  setsid "$VENV/bin/python" -m synapse.app.homeserver -c "$DATA/homeserver.yaml" \
    >"$DATA/stdout.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"

  local timeout="${SYNAPSE_START_TIMEOUT:-60}" start=$SECONDS
  until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$client_port/_matrix/client/versions" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Synapse exited during start-up; last log lines:"
      tail -n 40 "$DATA/stdout.log" "$DATA/homeserver.log" >&2 2>/dev/null || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((SECONDS - start >= timeout)); then
      log "Synapse did not answer within ${timeout}s; last log lines:"
      tail -n 40 "$DATA/stdout.log" "$DATA/homeserver.log" >&2 2>/dev/null || true
      cmd_stop
      exit 1
    fi
    sleep 0.5
  done
  log "Synapse is up after $((SECONDS - start))s (pid $pid)"

  cat >"$ENVFILE" <<EOF
SYNAPSE_CLIENT_URL=http://127.0.0.1:$client_port
SYNAPSE_FED_PORT=$fed_port
SYNAPSE_SERVER_NAME=$server_name
SYNAPSE_SHARED_SECRET=$secret
EOF
  cat "$ENVFILE"
}

load_env() {
  [[ -f "$ENVFILE" ]] || die "no $ENVFILE: run '$0 start' first"
  # shellcheck disable=SC1090
  source "$ENVFILE"
}

cmd_register() {
  [[ $# -ge 2 && $# -le 3 ]] || die "usage: $0 register USER PASS [admin]"
  local user="$1" pass="$2" admin="--no-admin"
  if [[ $# -eq 3 ]]; then
    [[ "$3" == admin ]] || die "third argument must be 'admin'"
    admin="--admin"
  fi
  running_pid >/dev/null || die "Synapse is not running"
  load_env
  "$VENV/bin/register_new_matrix_user" -c "$DATA/homeserver.yaml" \
    -u "$user" -p "$pass" "$admin" "$SYNAPSE_CLIENT_URL"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) if pid="$(running_pid)"; then echo "running (pid $pid)"; else echo "not running"; exit 1; fi ;;
  env) load_env; cat "$ENVFILE" ;;
  register) shift; cmd_register "$@" ;;
  *) die "usage: $0 {install|start|stop|status|env|register USER PASS [admin]}" ;;
esac
