#!/bin/sh
# What `make test` and `make demo` need from the operating system, installed where it can be.
#
#   scripts/os-deps.sh test   redis-server, nginx, chromium, node and npm (the suite runs
#                             them for real), gcc and Python's headers (the compiled
#                             selector), then the npm packages of tests/tune/node
#   scripts/os-deps.sh demo   only what creating .venv needs
#
# Fast and quiet when everything is there (a few `command -v` checks and one file date).
# Missing packages are installed with apt-get as root, or through passwordless `sudo -n`;
# otherwise it stops at once with one line naming the command to run. The Debian packages of
# nginx and redis-server start system instances (ports 80 and 6379): the ones it installs
# are stopped again (the tests start their own on free loopback ports).
#
# For its tests: WSLAB_OS_DEPS_PATH replaces the directories searched for the programs
# (default: $PATH and the sbin directories), WSLAB_OS_DEPS_UID replaces `id -u`,
# WSLAB_NODE_DIR replaces tests/tune/node.
set -eu
cd "$(dirname "$0")/.."

what=${1:-test}
search=${WSLAB_OS_DEPS_PATH:-$PATH:/usr/local/sbin:/usr/sbin:/sbin}
uid=${WSLAB_OS_DEPS_UID:-$(id -u)}
node_dir=${WSLAB_NODE_DIR:-tests/tune/node}
python=${PYTHON:-python3}

have() {  # is program $1 in the searched directories?
  PATH=$search command -v "$1" >/dev/null 2>&1
}

headers() {  # does the interpreter that builds the twin have Python.h?
  builder=$python
  [ -x .venv/bin/python ] && builder=.venv/bin/python
  "$builder" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1
}

missing() {  # the packages whose programs are absent
  out=""
  if [ "$what" = test ]; then
    have redis-server || out="$out redis-server"
    have nginx || out="$out nginx"
    have chromium || out="$out chromium"
    have node || out="$out nodejs"
    have npm || out="$out npm"
    # a C compiler and Python's headers build the adaptive selector's compiled twin
    # (scripts/build_native.py); without them it runs as plain Python, only slower
    have gcc || have cc || out="$out gcc"
    headers || out="$out python3-dev"
  fi
  if [ ! -x .venv/bin/python ] && ! "$python" -m ensurepip --version >/dev/null 2>&1; then
    out="$out python3-venv"  # Debian's python3 cannot create a venv without it
  fi
  echo "${out# }"
}

need=$(missing)
if [ -n "$need" ]; then
  install="apt-get install -y --no-install-recommends $need"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "wslab: missing OS packages: $need; install them with your package manager" >&2
    exit 1
  fi
  if [ "$uid" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo="sudo -n"
  else
    echo "wslab: missing OS packages: $need; run: sudo apt-get update && sudo $install" >&2
    exit 1
  fi
  echo "installing OS packages: $need" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  # shellcheck disable=SC2086  # $need is a word list on purpose
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $need >/dev/null
  for service in nginx redis-server; do
    case " $need " in *" $service "*) ;; *) continue ;; esac
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl stop "$service" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
      $sudo service "$service" stop >/dev/null 2>&1 || true
    fi
  done
  left=$(missing)
  if [ -n "$left" ]; then
    echo "wslab: still missing after apt-get install: $left" >&2
    exit 1
  fi
fi

# npm packages the tests run against (ws for the Node.js peer and the exported server),
# pinned by package-lock.json; reinstalled only when the lock file changes.
if [ "$what" = test ] && [ -f "$node_dir/package-lock.json" ]; then
  marker="$node_dir/node_modules/.package-lock.json"
  if [ ! -f "$marker" ] || [ "$node_dir/package-lock.json" -nt "$marker" ]; then
    echo "installing npm packages in $node_dir" >&2
    (cd "$node_dir" && PATH=$PATH:$search npm ci --no-audit --no-fund --loglevel=error \
      >/dev/null)
  fi
fi
