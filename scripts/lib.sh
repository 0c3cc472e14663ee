# Shared by scripts/up and scripts/test: install what is missing, build.
# Sourced, not run.

# Debian 12 packages the project needs to build, run and test.
CT_PACKAGES=(
  build-essential cmake pkg-config
  librdkafka-dev librocksdb-dev libmicrohttpd-dev libjansson-dev libpq-dev libcurl4-openssl-dev
  libjwt-dev libssl-dev
  clang libclang-rt-14-dev clang-format
  libcriterion-dev
  postgresql
  openjdk-17-jre-headless maven
  python3 python3-yaml python3-jsonschema
  curl jq
  chromium
)

ct_log() { printf '%s\n' "$*" >&2; }

# Node.js runs the console's browser test (tests/browser): Debian's when
# there is no node at all (any node >= 18 will do).
command -v node >/dev/null 2>&1 || CT_PACKAGES+=(nodejs npm)

# Installs only the missing packages: a no-op (a few dpkg queries) once done.
ct_deps() {
  local missing=() p
  for p in "${CT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { ct_log "error: need root or sudo to install: ${missing[*]}"; return 1; }
    sudo=(sudo)
  fi
  ct_log "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ct_build <dir> <sanitize ON|OFF>: configure once, then incremental builds.
ct_build() {
  local dir=$1 sanitize=$2
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONCERT_SANITIZE="$sanitize" >/dev/null
  fi
  cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null
}

# The browser test's driver (puppeteer-core, pinned by
# tests/browser/package-lock.json) from npm, once.
ct_browser_deps() {
  local dir=tests/browser
  [ -d "$dir/node_modules/puppeteer-core" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] &&
    return 0
  ct_log "installing the browser test's node modules ..."
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
}
