#!/usr/bin/env bash
# Property-based tests of the whole HTTP API against its own OpenAPI document,
# for a default shopd and for one with an admin token (each documents what
# it runs): builds shopd, starts it on a free port over a fresh data
# directory, checks that /openapi.json is a valid OpenAPI 3 document, then lets Schemathesis
# generate valid and invalid requests for every operation (and chains of
# them along the document's links: create an item, then read, change, delete
# it or add it to a cart). Exits non-zero on any failure.
#
# Environment (all optional):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 150)
#   SCHEMATHESIS_SEED          a seed to replay, or "random" (default: fixed)
#   SCHEMATHESIS_VENV          an existing virtualenv with the pinned tools,
#                              instead of a fresh one under the temp dir
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ST_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-150}
seed=${SCHEMATHESIS_SEED:-20261127}

started=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/shopd-schemathesis.XXXXXX")
shopd_pid=
cleanup() {
    if [[ -n $shopd_pid ]] && kill -0 "$shopd_pid" 2>/dev/null; then
        kill "$shopd_pid" 2>/dev/null || true
        wait "$shopd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1. The tools, pinned.
venv=${SCHEMATHESIS_VENV:-$work/venv}
if [[ ! -x $venv/bin/st ]]; then
    echo "== installing schemathesis $ST_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$ST_VERSION" \
        "openapi-spec-validator==$VALIDATOR_VERSION"
fi

# 2. shopd, built; each run below starts it on a free port.
echo "== building shopd"
cargo build --quiet --bin shopd
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# serve NAME [VAR=VALUE...]: shopd started on a free port over a fresh data
# directory, away from any ./config.toml and SHOPD_* settings of the
# caller, with the given environment; sets $base and $shopd_pid.
serve() {
    local name=$1
    shift
    mkdir -p "$work/$name/run" "$work/$name/data"
    (
        cd "$work/$name/run"
        for var in $(compgen -e); do
            [[ $var == SHOPD_* ]] && unset "$var"
        done
        exec env "$@" "$target_dir/debug/shopd" --listen 127.0.0.1:0 \
            --data-dir "$work/$name/data" --log-level warn >"$work/$name/stdout" 2>"$work/$name/stderr"
    ) &
    shopd_pid=$!
    base=
    for _ in $(seq 300); do
        line=$(head -n 1 "$work/$name/stdout" 2>/dev/null || true)
        if [[ $line == "shopd listening on http://"* ]]; then
            base=${line#shopd listening on }
            break
        fi
        if ! kill -0 "$shopd_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [[ -z $base ]]; then
        echo "shopd ($name) did not start:" >&2
        cat "$work/$name/stderr" >&2
        exit 1
    fi
    echo "== shopd ($name) at $base"
}

# Requests shopd has answered, from its own Prometheus counter.
requests_served() {
    "$venv/bin/python" - "$base/metrics" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
print(int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("http_requests_total{"))))
EOF
}

# The document is valid OpenAPI 3.
validate_document() {
    "$venv/bin/python" - "$base/openapi.json" <<'EOF'
import json, sys, urllib.request
from openapi_spec_validator import validate
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    document = json.load(response)
validate(document)
operations = sum(len(item) for item in document["paths"].values())
print(f"== /openapi.json is valid OpenAPI {document['openapi']}: {operations} operations")
EOF
}

# 3. Fuzzing. `use_after_free` is left out on purpose: the contract answers
#    304, not 404, to PUT/PATCH on a deleted item (FastAPI's behaviour), and
#    the document says so.
#    Path and query values are read leniently, as FastAPI (pydantic) reads
#    them: white space around integers, a `+` sign, `yes`/`on`/`1`... for
#    booleans. An OpenAPI schema cannot say so, so Schemathesis may send such
#    a value as "invalid" and see it accepted; this hook drops exactly those
#    reports, by checking the values with shopd's own rules.
cat >"$work/shopd_hooks.py" <<'EOF'
import itertools
import re

import schemathesis

FRESH = itertools.count()

INTEGER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?(inf|infinity|nan|([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?)", re.I)
BOOLEANS = {"true", "1", "yes", "on", "t", "y", "false", "0", "no", "off", "f", "n"}
MINIMUM = {"offset": 0, "limit": 1, "min_quantity": 0, "max_quantity": 0}


def text_of(value):
    if isinstance(value, list):  # a repeated query parameter: the last one counts
        value = value[-1] if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value).strip()
    return None


def shopd_accepts(location, name, value):
    text = text_of(value)
    if text is None:
        return False
    if location == "path":  # any integer is an id: a 404 at worst, never a 422
        return INTEGER.fullmatch(text) is not None
    if name in MINIMUM:
        return INTEGER.fullmatch(text) is not None and int(text) >= MINIMUM[name]
    if name in ("min_price", "max_price"):
        return NUMBER.fullmatch(text) is not None and float(text) >= 0
    if name == "show_deleted":
        return text.lower() in BOOLEANS
    return True  # unknown query parameters are ignored


@schemathesis.hook
def map_headers(context, headers):
    # A random If-Match almost never names the item's current ETag, so the
    # write would nearly always be refused with 412 and its body never
    # reached: most become `*` (any current item); a quarter stay as drawn.
    for name in list(headers or {}):
        if name.lower() == "if-match" and len(str(headers[name])) % 4 != 0:
            headers[name] = "*"
        # A drawn Idempotency-Key repeats across operations and bodies, so
        # most writes would get the 422 of a reused key (or a replay) and
        # never run: most get a fresh key; an eighth stay as drawn.
        key = str(headers[name])
        if name.lower() == "idempotency-key" and key.isascii() and key.isprintable() \
                and " " not in key and 0 < len(key) <= 200 and len(key) % 8 != 0:
            headers[name] = f"{key}-{next(FRESH)}"
    return headers


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # A schema-valid If-Match that names no current ETag is a stale
    # precondition: 412 is its right answer, not a rejection.
    if_match = {k.lower(): v for k, v in (case.headers or {}).items()}.get("if-match")
    if failure.code == "ST202" and response.status_code == 412 and if_match is not None:
        return False
    # A key already used with another request: its 422 is the right answer.
    if failure.code == "ST202" and response.status_code == 422 \
            and "idempotency_key_reused" in response.text:
        return False
    if failure.code != "ST201" or not re.search(r"in (path|query)", failure.message):
        return True
    values = [("path", n, v) for n, v in (case.path_parameters or {}).items()]
    values += [("query", n, v) for n, v in (case.query or {}).items()]
    return not all(shopd_accepts(*value) for value in values)
EOF
seed_args=(--seed "$seed")
[[ $seed == random ]] && seed_args=()

# fuzz NAME [TOKEN]: one shopd (with the admin token TOKEN, if given), its
# document checked, fuzzed, then stopped; it must stop cleanly and log no
# error (a 5xx would be logged). Sets $status to 1 on any failure.
status=0
fuzz() {
    local name=$1 token=${2:-}
    local env=() headers=()
    if [[ -n $token ]]; then
        env=(SHOPD_ADMIN_TOKEN="$token")
        headers=(--header "Authorization: Bearer $token")
    fi
    serve "$name" "${env[@]}"
    validate_document
    local before after
    before=$(requests_served)
    (
        cd "$work"
        PYTHONPATH=$work SCHEMATHESIS_HOOKS=shopd_hooks "$venv/bin/st" run "$base/openapi.json" \
            --phases examples,coverage,fuzzing,stateful \
            --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,response_headers_conformance,negative_data_rejection,positive_data_acceptance,missing_required_header,unsupported_method,allow_header_conformance,ensure_resource_availability \
            --max-examples "$max_examples" \
            --workers 1 \
            "${seed_args[@]}" \
            --generation-database none \
            --request-timeout 10 \
            "${headers[@]}" \
            --no-color
    ) || status=1
    after=$(requests_served)
    echo "== schemathesis made $((after - before)) requests to shopd ($name)"
    kill -TERM "$shopd_pid"
    local shopd_status=0
    wait "$shopd_pid" || shopd_status=$?
    shopd_pid=
    if [[ $shopd_status -ne 0 ]]; then
        echo "shopd ($name) exited with status $shopd_status" >&2
        status=1
    fi
    if grep -q "ERROR" "$work/$name/stderr"; then
        echo "shopd ($name) logged errors:" >&2
        grep "ERROR" "$work/$name/stderr" | head -n 20 >&2
        status=1
    fi
}

# 4. Both configurations the document describes: a default shopd (no
#    /admin/*, item writes open), and one with an admin token (/admin/*
#    there; Schemathesis sends the token, and checks the 401 without it).
fuzz default
fuzz token "schemathesis-admin-token-$RANDOM$RANDOM"

echo "== schemathesis step took $((SECONDS - started)) s"
cd "$root"
exit "$status"
