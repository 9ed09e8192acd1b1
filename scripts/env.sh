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

# What the tests need beyond the build: curl, LanceDB's Python package (the original
# backend's reader), poppler and tesseract, an OpenAPI validator and moto's S3 server.
lancesync_test_setup() {
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
    # The OpenAPI document is checked with a standard validator.
    if command -v python3 >/dev/null 2>&1 && ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
        echo "installing openapi-spec-validator for the OpenAPI document test" >&2
        python3 -m pip install --quiet --disable-pip-version-check "openapi-spec-validator>=0.7,<0.8" >&2
    fi
    # The storage tests run against a real S3-compatible server on 127.0.0.1: moto's.
    if ! command -v moto_server >/dev/null 2>&1; then
        echo "installing moto's S3 server for the storage tests" >&2
        python3 -m pip install --quiet --disable-pip-version-check "moto[server]>=5.1,<6" >&2
        hash -r
    fi
}
