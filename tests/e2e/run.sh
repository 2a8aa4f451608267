#!/usr/bin/env bash
# run.sh: oxisd's end-to-end suite against a real Synapse 1.163 (issue 8).
#
# Installs Synapse into a cached venv ($E2E_HOME/venv, default target/e2e/venv; about a minute
# the first time, nothing after), then builds and runs the suite with `cargo test --test e2e`.
# The suite starts its own oxisd, SMTP sink, Twilio stand-in and Synapse on loopback, prints one
# PASS/FAIL line per scenario, and stops everything it started. Extra arguments go to cargo
# (e.g. --release). Logs of the last run: target/e2e/run/oxisd.log (oxisd-directory.log for the
# "directory" phase) and target/e2e/run/synapse/homeserver.log (the last Synapse started). Before
# that, the unit tests of contrib/synapse/oxisd_auth_provider.py run on the venv's Synapse.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== e2e: Synapse 1.163 (cached in ${E2E_HOME:-target/e2e}/venv)"
tests/e2e/synapse.sh install

echo "== e2e: unit tests of the Synapse module contrib/synapse/oxisd_auth_provider.py"
"${E2E_HOME:-target/e2e}/venv/bin/python" -m unittest discover -s contrib/synapse

echo "== e2e: oxisd against Synapse (cargo test --test e2e)"
if ! cargo test "$@" --test e2e; then
  echo "e2e: FAILED; logs: ${E2E_HOME:-target/e2e}/run/oxisd.log, ${E2E_HOME:-target/e2e}/run/synapse/homeserver.log" >&2
  exit 1
fi
