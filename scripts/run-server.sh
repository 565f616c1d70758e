#!/bin/sh
# Runs one built entry point of the gateway (main, web, worker or reseal; later arguments go to
# it), as `npm start`, `npm run web`, `npm run worker` and `npm run reseal` do, with the process
# settings they share.
#
# MALLOC_ARENA_MAX=2 (unless the environment sets it): glibc otherwise gives each thread that
# allocates (the web server, the worker's workflow thread, the Temporal core's threads) an arena of
# its own, up to eight per core, and memory freed in one stays held by it (README, "Memory").
# scripts/node-flags holds the Node flags they all run with (one per line, # for comments).
# scripts/source-maps.mjs, preloaded, maps stack traces to the gateway's own sources without
# keeping every dependency's source maps in memory as --enable-source-maps does.
set -e
case "$1" in
  main) entry=main.js ;;
  web | worker | reseal) entry="$1-main.js" ;;
  *)
    echo "usage: scripts/run-server.sh main|web|worker|reseal" >&2
    exit 64
    ;;
esac
shift
: "${MALLOC_ARENA_MAX:=2}"
export MALLOC_ARENA_MAX
# Unquoted on purpose: each line of the file is one flag.
# shellcheck disable=SC2046
exec node $(grep -v '^[[:space:]]*#' scripts/node-flags) --import ./scripts/source-maps.mjs ".build/server/$entry" "$@"
