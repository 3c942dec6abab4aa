# Source me: creates (once) and activates .venv with trajstore and its test/example extras.
# Torch defaults to the CPU-sized 2.13.0 release; set TRAJSTORE_TORCH to pin another.
set -e
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TRAJSTORE_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
. "$venv/bin/activate"
stamp="$venv/.trajstore-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -e "$here[dev,plot,dask]" "torch${TRAJSTORE_TORCH:-==2.13.0}"
  # cffconvert validates CITATION.cff in the tests; it pins jsonschema<4 but works with the 4.x the
  # JSON-schema tests need, so it is installed beside them without its own pins.
  python -m pip install -q "pykwalify>=1.6" "ruamel.yaml>=0.16" "requests>=2.20"
  python -m pip install -q --no-deps "cffconvert==2.0.0"
  touch "$stamp"
fi
set +e
