# Shared by scripts/up and scripts/test: install what is missing, build.
# Sourced, not run.

# Debian 12 packages the project needs to build, run and test.
CT_PACKAGES=(
  build-essential cmake pkg-config
  librdkafka-dev librocksdb-dev libmicrohttpd-dev libjansson-dev libpq-dev libcurl4-openssl-dev
  libjwt-dev libssl-dev
  clang libclang-rt-14-dev
  libcriterion-dev
  postgresql
  openjdk-17-jre-headless maven
  python3 python3-yaml python3-jsonschema
  curl jq
)

ct_log() { printf '%s\n' "$*" >&2; }

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
