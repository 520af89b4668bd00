# Sourced by bench/instructions.sh, bench/pgo.sh and bench/translate.sh: a catalog with
# `/hello` in a migrated context, and the head-only translator of the translated case.

# hello_catalog UPSTREAM [TRANSLATOR]: prints a catalog whose `hello` context is migrated to a
# service at UPSTREAM (host:port), with the TRANSLATOR spec if one is given.
hello_catalog() {
    printf '[[services]]\nname = "new-svc"\nurls = ["http://%s"]\n\n' "$1"
    printf '[[contexts]]\nname = "hello"\ntarget = "new-svc"\nstate = "migrated"\n'
    if [ -n "${2:-}" ]; then
        printf 'translator = """\n%s\n"""\n' "$2"
    fi
    printf '\n[[contexts.routes]]\nmethods = ["GET"]\npath = "/hello"\n'
}

# A head-only translator: a path rewrite with a capture, headers added, removed, renamed and
# set from the capture, response headers added and removed.
# shellcheck disable=SC2034 # used by the scripts that source this file
HEAD_ONLY='[[paths]]
from = "/{greeting}"
to = "/v2/{greeting}"
[request.headers]
add = { "x-api-version" = "2" }
remove = ["x-legacy-debug"]
rename = { "x-customer" = "x-customer-id" }
from_capture = { "x-greeting" = "greeting" }
[response.headers]
add = { "x-contract" = "legacy-v1" }
remove = ["x-internal"]'
