#!/usr/bin/env bash
# One entry point for a fresh clone:
#   bash run.sh test    set up .venv and run the test suite (pytest arguments pass through)
#   bash run.sh site    set up .venv and build the site (executing the gallery) into docs/_build/html
#   bash run.sh mkdocs  set up .venv and build the MkDocs reading site into docs/_build/mkdocs
#   bash run.sh setup   only set up .venv
# The first setup creates .venv and installs everything; later calls reinstall only when
# pyproject.toml, the Python version or TORCH_VERSION changed (delete .venv/.labml_gat-setup to
# force it). The site build re-runs a gallery example only when it or the code it depends on changed.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
STAMP="$VENV/.labml_gat-setup"

now() { date +%s%N; }
took() {  # took LABEL START: prints how long the phase since START took
    local ms=$((($(now) - $2) / 1000000))
    printf '%s took %d.%01d s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100))
}

wanted_stamp() {
    # What the installed .venv was made from: change any of these and setup installs again.
    echo "pyproject.toml $(sha256sum pyproject.toml | cut -d' ' -f1)"
    echo "python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    echo "torch $TORCH_VERSION"
}

setup() {
    local start; start=$(now)
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(wanted_stamp)" ]; then
        took "setup (.venv up to date)" "$start"
        return
    fi
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # A CPU build of PyTorch first, so that nothing below pulls a CUDA build.
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
    # setuptools prints a banner of deprecation notices on every editable install; they are
    # about its own future, not about this project.
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet -e '.[test,docs]'
    wanted_stamp > "$STAMP"
    took "setup (installed)" "$start"
}

data_dir() {
    # The Planetoid files: LABML_GAT_DATA if set, else the shared folder beside the clone.
    if [ -z "${LABML_GAT_DATA:-}" ] && [ -d ../shared/data/planetoid ]; then
        LABML_GAT_DATA=$(cd ../shared/data/planetoid && pwd)
    fi
    export LABML_GAT_DATA=${LABML_GAT_DATA:-}
}

case "${1:-}" in
    setup)
        setup
        ;;
    test)
        setup
        data_dir
        shift
        start=$(now)
        status=0
        "$VENV/bin/python" -m pytest "$@" || status=$?
        took "tests" "$start"
        exit "$status"
        ;;
    site)
        setup
        data_dir
        start=$(now)
        status=0
        "$VENV/bin/python" -m sphinx -W --keep-going -b html docs docs/_build/html || status=$?
        took "site build" "$start"
        if [ "$status" -ne 0 ]; then
            exit "$status"
        fi
        echo "Site built: open docs/_build/html/index.html"
        ;;
    mkdocs)
        setup
        NO_MKDOCS_2_WARNING=1 "$VENV/bin/python" -m mkdocs build --strict
        echo "Site built: open docs/_build/mkdocs/index.html"
        ;;
    *)
        echo "usage: bash run.sh test [pytest args] | bash run.sh site | bash run.sh mkdocs | bash run.sh setup" >&2
        exit 2
        ;;
esac
