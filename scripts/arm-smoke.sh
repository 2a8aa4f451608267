#!/usr/bin/env bash
# Smoke-tests the ARM binaries built by scripts/cross-build.sh under qemu user emulation.
#
#   scripts/arm-smoke.sh                                  # all three targets
#   scripts/arm-smoke.sh aarch64-unknown-linux-musl       # some of them
#
# For each target: starts target/cross/dist/oxisd-<target> under qemu-<arch>-static on
# 127.0.0.1 port 0 with an SMTP connector pointed at a local sink (scripts/smtp_sink.py), then
# over HTTP: requestToken -> the mail arrives -> its token -> submitToken -> 3pid/bind ->
# the association's fields and its ed25519 signature (checked with the openssl CLI against
# /pubkey/ed25519:0, over canonical JSON) -> a v1 lookup finds the binding -> SIGTERM stops the
# server cleanly. Prints PASS/FAIL per target; exits non-zero if any failed.
#
# Environment:
#   OXISD_CROSS_DIR            build area (default: <repo>/target/cross); binaries in its dist/
#   OXISD_SMOKE_START_TIMEOUT  seconds to wait for "listening on" (default 180: qemu is slow)
#   OXISD_SMOKE_KEEP=1         keep the work directory (configs, logs, mails) afterwards
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CROSS_DIR=${OXISD_CROSS_DIR:-$ROOT/target/cross}
DIST=$CROSS_DIR/dist
START_TIMEOUT=${OXISD_SMOKE_START_TIMEOUT:-180}
MAIL_TIMEOUT=${OXISD_SMOKE_MAIL_TIMEOUT:-90}
REQ_TIMEOUT=60
SERVER_NAME=smoke.test
MXID='@alice:example.org'
ALL=(aarch64-unknown-linux-gnu aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

die() { echo "arm-smoke: error: $*" >&2; exit 1; }
say() { echo "arm-smoke: $*" >&2; }

[ $# -gt 0 ] || set -- "${ALL[@]}"
for t in "$@"; do
    case $t in
        aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf) ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unsupported target '$t' (known: ${ALL[*]})" ;;
    esac
done

for tool in python3 curl openssl; do
    command -v $tool >/dev/null || die "$tool is needed (apt-get install -y $tool)"
done
openssl pkeyutl -help 2>&1 | grep -q -- -rawin || die "openssl >= 3.0 is needed (pkeyutl -rawin for ed25519)"

# ---------------------------------------------------------------- qemu and the arm64 libc
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
SUDO=()
apt_install() {
    command -v apt-get >/dev/null ||
        die "apt-get not found: install by hand the equivalents of: $* (qemu user-mode emulators)"
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null ||
            die "missing: $* and installing needs root (or password-less sudo): sudo apt-get install -y $*"
        SUDO=(sudo -n)
    fi
    local i
    say "installing: $*"
    for i in 1 2 3; do
        "${SUDO[@]}" apt-get update -q >&2 && break
        [ $i -eq 3 ] && die "apt-get update keeps failing (a mirror mid-sync? try later)"
        sleep 30
    done
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@" >&2 ||
        die "apt-get install failed for: $*"
}

need=()
for t in "$@"; do
    case $t in
        aarch64-*) command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static) ;;
        armv7-*) command -v qemu-arm-static >/dev/null || need+=(qemu-user-static) ;;
    esac
done
if printf '%s\n' "$@" | grep -qx aarch64-unknown-linux-gnu; then
    # The gnu binary is dynamic: qemu (run without -L) takes the loader and libraries from the
    # multiarch arm64 packages. (-L /usr/aarch64-linux-gnu hangs at the first thread spawn.)
    if ! [ -e /lib/ld-linux-aarch64.so.1 ] || ! [ -e /lib/aarch64-linux-gnu/libgcc_s.so.1 ]; then
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            [ "$(id -u)" -eq 0 ] || die "the arm64 dpkg architecture is needed: sudo dpkg --add-architecture arm64"
            dpkg --add-architecture arm64
        fi
        need+=(libc6:arm64 libgcc-s1:arm64)
    fi
fi
if [ ${#need[@]} -gt 0 ]; then
    # shellcheck disable=SC2207
    need=($(printf '%s\n' "${need[@]}" | sort -u))
    apt_install "${need[@]}"
fi

# ---------------------------------------------------------------- work area and clean-up
WORK=$(mktemp -d "${TMPDIR:-/tmp}/oxisd-arm-smoke.XXXXXX")
CHILDREN=()
cleanup() {
    local pid
    for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    sleep 0.5
    for pid in "${CHILDREN[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    if [ "${OXISD_SMOKE_KEEP:-0}" = 1 ]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The checks that need JSON, MIME and base64: Python 3 standard library.
cat >"$WORK/check.py" <<'PY'
import base64, email, email.policy, glob, json, os, re, sys, time, urllib.parse

def b64(s):
    s = s.strip()
    s += "=" * (-len(s) % 4)
    return base64.b64decode(s.replace("-", "+").replace("_", "/"), validate=True)

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "field":                      # field FILE KEY: prints a top-level value
    v = json.load(open(args[0])).get(args[1])
    if v is None:
        sys.exit("no %r in %s" % (args[1], open(args[0]).read()[:500]))
    print(json.dumps(v) if not isinstance(v, str) else v)
elif cmd == "success":                  # success FILE: {"success": true}
    body = json.load(open(args[0]))
    if body != {"success": True}:
        sys.exit("expected {\"success\": true}, got %s" % json.dumps(body))
elif cmd == "mailtoken":                # mailtoken MAILDIR SID ADDRESS: prints the token
    files = sorted(f for f in glob.glob(os.path.join(args[0], "mail-*.eml")))
    if not files:
        sys.exit("no mail")
    msg = email.message_from_bytes(open(files[-1], "rb").read(), policy=email.policy.default)
    if args[2] not in str(msg["To"]):
        sys.exit("mail is to %r, not %r" % (str(msg["To"]), args[2]))
    text = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            text += part.get_content()
    links = re.findall(r"https?://\S*submitToken\?\S+", text)
    if not links:
        sys.exit("no submitToken link in the mail's text part:\n" + text[:2000])
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(links[0]).query)
    if q.get("sid") != [args[1]]:
        sys.exit("link %s is not for sid %s" % (links[0], args[1]))
    token = q.get("token", [""])[0]
    if not token or token not in text.replace(links[0], ""):
        sys.exit("no token in link %s, or the code in the text differs" % links[0])
    print(token)
elif cmd == "assoc":                    # assoc ASSOC PUBKEY SERVER ADDRESS MXID OUTDIR
    assoc_file, pub_file, server, address, mxid, out = args
    a = json.load(open(assoc_file))
    problems = []
    for k, want in (("address", address), ("medium", "email"), ("mxid", mxid)):
        if a.get(k) != want:
            problems.append("%s is %r, expected %r" % (k, a.get(k), want))
    now = time.time() * 1000
    for k in ("not_before", "not_after", "ts"):
        if not isinstance(a.get(k), int):
            problems.append("%s missing or not an integer: %r" % (k, a.get(k)))
    if not problems:
        if abs(a["ts"] - now) > 600_000:
            problems.append("ts %d is not now (%d)" % (a["ts"], now))
        if not a["not_before"] <= a["ts"] < a["not_after"]:
            problems.append("not_before <= ts < not_after does not hold")
    sig = (a.get("signatures") or {}).get(server, {}).get("ed25519:0")
    if not sig:
        problems.append("no signatures.%s.ed25519:0 in %s" % (server, json.dumps(a)))
    if problems:
        sys.exit("; ".join(problems))
    sig = b64(sig)
    pub = b64(json.load(open(pub_file))["public_key"])
    if len(sig) != 64 or len(pub) != 32:
        sys.exit("signature is %d bytes, key %d bytes (want 64 and 32)" % (len(sig), len(pub)))
    unsigned = {k: v for k, v in a.items() if k != "signatures"}
    unsigned.pop("unsigned", None)
    msg = canonical(unsigned)
    open(os.path.join(out, "msg"), "wb").write(msg)
    open(os.path.join(out, "msg.tampered"), "wb").write(msg.replace(b"@alice", b"@mallory"))
    open(os.path.join(out, "sig"), "wb").write(sig)
    der = bytes.fromhex("302a300506032b6570032100") + pub
    pem = base64.encodebytes(der).decode()
    open(os.path.join(out, "pub.pem"), "w").write(
        "-----BEGIN PUBLIC KEY-----\n" + pem + "-----END PUBLIC KEY-----\n")
    print("%s fields ok, ts %d" % (", ".join(sorted(unsigned)), a["ts"]))
elif cmd == "lookup":                   # lookup FILE MXID
    got = json.load(open(args[0])).get("mxid")
    if got != args[1]:
        sys.exit("lookup answered mxid %r, expected %r" % (got, args[1]))
PY

# curl wrapper: http METHOD URL OUTFILE [JSON] -> prints the status code
http() {
    local method=$1 url=$2 out=$3 body=${4:-}
    if [ -n "$body" ]; then
        curl -sS --max-time "$REQ_TIMEOUT" -o "$out" -w '%{http_code}' -X "$method" \
            -H 'Content-Type: application/json' --data-binary "$body" "$url"
    else
        curl -sS --max-time "$REQ_TIMEOUT" -o "$out" -w '%{http_code}' -X "$method" "$url"
    fi
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# smoke TARGET: returns 0 when every step passed. Steps print as they go.
smoke() {
    local target=$1 qemu D bin sink srv port addr base code sid token secret email t0 started
    bin=$DIST/oxisd-$target
    case $target in
        aarch64-*) qemu=qemu-aarch64-static ;;
        armv7-*) qemu=qemu-arm-static ;;
    esac
    D=$WORK/$target
    mkdir -p "$D/mail" "$D/data"
    fail() {
        echo "    FAIL: $*"
        echo "    --- last lines of the server log ($D/oxisd.log):"
        tail -n 15 "$D/oxisd.log" 2>/dev/null | sed 's/^/    | /'
        return 1
    }
    step() { echo "    ok: $*"; }

    [ -x "$bin" ] || { echo "    FAIL: $bin missing: run scripts/cross-build.sh $target"; return 1; }
    echo "    $(file -b "$bin" | cut -d, -f1-2), $(stat -c %s "$bin") bytes, under $qemu"

    python3 "$ROOT/scripts/smtp_sink.py" --dir "$D/mail" --port-file "$D/sink.port" >"$D/sink.log" 2>&1 &
    sink=$!
    CHILDREN+=("$sink")
    for _ in $(seq 100); do [ -s "$D/sink.port" ] && break; sleep 0.1; done
    [ -s "$D/sink.port" ] || { cat "$D/sink.log"; fail "the SMTP sink did not start"; return 1; }
    port=$(cat "$D/sink.port")

    cat >"$D/config.yaml" <<EOF
server:
  name: $SERVER_NAME
  hostname: 127.0.0.1
  port: 0
  workers: 4
storage:
  path: $D/data
threepid:
  medium:
    email:
      identity:
        from: noreply@$SERVER_NAME
        name: Smoke Test
      connector: smtp
      connectors:
        smtp:
          host: 127.0.0.1
          port: $port
          tls: 0
          timeout: 60
lookup:
  federation:
    enabled: false
logging:
  level: info
EOF

    t0=$(now)
    "$qemu" "$bin" --config "$D/config.yaml" >"$D/oxisd.log" 2>&1 &
    srv=$!
    CHILDREN+=("$srv")
    addr=
    for _ in $(seq $((START_TIMEOUT * 4))); do
        addr=$(grep -v -e 'admin listening' -e 'TLS listening' "$D/oxisd.log" |
            grep -oE "listening on http://[^ ]+ as" | head -n 1 | sed 's|listening on http://||; s| as$||')
        [ -n "$addr" ] && break
        kill -0 "$srv" 2>/dev/null || { fail "oxisd exited before listening"; return 1; }
        sleep 0.25
    done
    [ -n "$addr" ] || { fail "no 'listening on' within ${START_TIMEOUT}s"; return 1; }
    started=$(since "$t0")
    step "listening on $addr after ${started}s"
    base=http://$addr/_matrix/identity/api/v1

    secret="smoke-$RANDOM$RANDOM"
    email="alice@example.org"
    code=$(http POST "$base/validate/email/requestToken" "$D/request.json" \
        "{\"client_secret\":\"$secret\",\"email\":\"$email\",\"send_attempt\":1}") ||
        { fail "requestToken: curl failed"; return 1; }
    [ "$code" = 200 ] || { fail "requestToken answered $code: $(cat "$D/request.json")"; return 1; }
    sid=$(python3 "$WORK/check.py" field "$D/request.json" sid) || { fail "requestToken: no sid"; return 1; }
    step "requestToken: sid $sid"

    for _ in $(seq $((MAIL_TIMEOUT * 4))); do
        compgen -G "$D/mail/mail-*.eml" >/dev/null && break
        sleep 0.25
    done
    compgen -G "$D/mail/mail-*.eml" >/dev/null || { fail "no mail at the sink within ${MAIL_TIMEOUT}s"; return 1; }
    token=$(python3 "$WORK/check.py" mailtoken "$D/mail" "$sid" "$email" 2>&1) ||
        { fail "mail: $token"; return 1; }
    step "mail arrived at the sink, token $token"

    code=$(http POST "$base/validate/email/submitToken" "$D/submit.json" \
        "{\"sid\":\"$sid\",\"client_secret\":\"$secret\",\"token\":\"$token\"}") ||
        { fail "submitToken: curl failed"; return 1; }
    [ "$code" = 200 ] || { fail "submitToken answered $code: $(cat "$D/submit.json")"; return 1; }
    python3 "$WORK/check.py" success "$D/submit.json" || { fail "submitToken"; return 1; }
    step "submitToken: {\"success\": true}"

    code=$(http POST "$base/3pid/bind" "$D/assoc.json" \
        "{\"sid\":\"$sid\",\"client_secret\":\"$secret\",\"mxid\":\"$MXID\"}") ||
        { fail "bind: curl failed"; return 1; }
    [ "$code" = 200 ] || { fail "3pid/bind answered $code: $(cat "$D/assoc.json")"; return 1; }
    code=$(http GET "$base/pubkey/ed25519:0" "$D/pubkey.json") || { fail "pubkey: curl failed"; return 1; }
    [ "$code" = 200 ] || { fail "pubkey answered $code: $(cat "$D/pubkey.json")"; return 1; }
    local msg
    msg=$(python3 "$WORK/check.py" assoc "$D/assoc.json" "$D/pubkey.json" "$SERVER_NAME" "$email" "$MXID" "$D" 2>&1) ||
        { fail "association: $msg"; return 1; }
    step "3pid/bind: $msg"
    local out
    out=$(openssl pkeyutl -verify -pubin -inkey "$D/pub.pem" -rawin -in "$D/msg" -sigfile "$D/sig" 2>&1) ||
        { fail "openssl refused the signature: $out"; return 1; }
    if openssl pkeyutl -verify -pubin -inkey "$D/pub.pem" -rawin -in "$D/msg.tampered" -sigfile "$D/sig" >/dev/null 2>&1; then
        fail "openssl accepted the signature over a tampered message: the check proves nothing"
        return 1
    fi
    step "ed25519 signature of $SERVER_NAME verified by openssl (and refused on a tampered copy)"

    code=$(http GET "$base/lookup?medium=email&address=alice%40example.org" "$D/lookup.json") ||
        { fail "lookup: curl failed"; return 1; }
    [ "$code" = 200 ] || { fail "lookup answered $code: $(cat "$D/lookup.json")"; return 1; }
    python3 "$WORK/check.py" lookup "$D/lookup.json" "$MXID" || { fail "lookup"; return 1; }
    step "v1 lookup finds $MXID"

    kill -TERM "$srv"
    local rc=
    for _ in $(seq 240); do
        kill -0 "$srv" 2>/dev/null || { wait "$srv"; rc=$?; break; }
        sleep 0.25
    done
    [ -n "$rc" ] || { fail "still running 60 s after SIGTERM"; return 1; }
    [ "$rc" = 0 ] || { fail "exit status $rc after SIGTERM"; return 1; }
    step "stopped cleanly on SIGTERM"
    kill "$sink" 2>/dev/null
    echo "    ($(since "$t0")s from start to stop)"
    return 0
}

failed=0
results=()
for target in "$@"; do
    echo "== $target"
    if smoke "$target"; then
        results+=("PASS $target")
    else
        results+=("FAIL $target")
        failed=$((failed + 1))
        OXISD_SMOKE_KEEP=1
    fi
done
echo
printf '%s\n' "${results[@]}"
[ "$failed" -eq 0 ] || { echo "arm-smoke: $failed of $# failed (logs kept in $WORK)"; exit 1; }
