#!/usr/bin/env bash
# Create the virtual environment of a peer that runs as a child process of the benchmarks (its pins
# clash with thrifty's): benchmarks/_work/venv-NAME from benchmarks/peers/NAME-requirements.txt.
#   bash benchmarks/peers/setup.sh venv-dehb
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:?usage: setup.sh venv-NAME (one of: $(ls "$here" | sed -n 's/-requirements.txt$//p' | sed 's/^/venv-/' | tr '\n' ' '))}"
name="${venv#venv-}"
req="$here/$name-requirements.txt"
[ -f "$req" ] || { echo "setup.sh: no $req" >&2; exit 2; }
dest="$here/../_work/$venv"
python3 -m venv "$dest"
"$dest/bin/pip" install -q --upgrade pip
"$dest/bin/pip" install -q -r "$req"
echo "created $dest"
