#!/usr/bin/env bash
# One entry point for a fresh clone:
#   bash run.sh test   set up .venv and run the test suite
#   bash run.sh site   set up .venv and build the site (executing the gallery) into docs/_build/html
#   bash run.sh mkdocs set up .venv and build the MkDocs reading site into docs/_build/mkdocs
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # A CPU build of PyTorch first, so that nothing below pulls a CUDA build.
    "$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/python" -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
    "$VENV/bin/python" -m pip install --quiet -e '.[test,docs]'
}

data_dir() {
    # The Planetoid files: LABML_GAT_DATA if set, else the shared folder beside the clone.
    if [ -z "${LABML_GAT_DATA:-}" ] && [ -d ../shared/data/planetoid ]; then
        LABML_GAT_DATA=$(cd ../shared/data/planetoid && pwd)
    fi
    export LABML_GAT_DATA=${LABML_GAT_DATA:-}
}

case "${1:-}" in
    test)
        setup
        data_dir
        shift
        "$VENV/bin/python" -m pytest "$@"
        ;;
    site)
        setup
        data_dir
        "$VENV/bin/python" -m sphinx -W --keep-going -b html docs docs/_build/html
        echo "Site built: open docs/_build/html/index.html"
        ;;
    mkdocs)
        setup
        NO_MKDOCS_2_WARNING=1 "$VENV/bin/python" -m mkdocs build --strict
        echo "Site built: open docs/_build/mkdocs/index.html"
        ;;
    *)
        echo "usage: bash run.sh test [pytest args] | bash run.sh site | bash run.sh mkdocs" >&2
        exit 2
        ;;
esac
