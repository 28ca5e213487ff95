#!/bin/sh
# Installs the courier binary for this machine, without root.
#
#   curl -fsSL https://github.com/OWNER/courier/releases/latest/download/install.sh | sh
#   sh install.sh [--version X.Y.Z] [--dir DIR]       # from a GitHub release
#   sh install.sh --from dist [--dir DIR]             # from a local build (deno task compile/release)
#
# It picks courier-<target> for this OS and CPU, checks it against the
# release's SHA256SUMS (and refuses on a mismatch or a missing entry: it
# never installs an unverified file), then moves it into place atomically
# (a temporary file in the target directory, then mv), by default to
# ~/.local/bin/courier. Run it with --help for every option.
#
# Exit codes: 0 installed; 1 failed (download, checksum, unsupported
# platform, the installed binary does not run); 64 bad usage.
set -eu

# The release workflow writes the repository (OWNER/NAME) here in the copy
# of this script it attaches to each release.
RELEASE_REPO=""

PROG="install.sh"

usage() {
  cat <<EOF
Usage: sh $PROG [options]

Installs courier for this machine ($(uname -s 2>/dev/null || echo ?)/$(uname -m 2>/dev/null || echo ?)).

Options:
  --dir DIR         install into DIR (default: \$COURIER_INSTALL_DIR or ~/.local/bin)
  --version X.Y.Z   install that release (default: \$COURIER_VERSION or the latest)
  --repo OWNER/NAME GitHub repository to download from (default: \$COURIER_REPO)
  --from DIR        install from a local dist/ (courier-<target> or courier, plus SHA256SUMS)
  --base-url URL    download courier-<target> and SHA256SUMS from URL/ (a mirror;
                    default: \$COURIER_DOWNLOAD_URL or the GitHub release)
  --target TRIPLE   install the binary for TRIPLE instead of this machine's
  -h, --help        show this help

Exit codes: 0 installed, 1 failed, 64 bad usage.
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  warn "error: $1"
  exit "${2:-1}"
}
usage_error() {
  warn "error: $1"
  warn "Run 'sh $PROG --help' for usage."
  exit 64
}

dir="${COURIER_INSTALL_DIR:-}"
version="${COURIER_VERSION:-}"
repo="${COURIER_REPO:-$RELEASE_REPO}"
from=""
base_url="${COURIER_DOWNLOAD_URL:-}"
target=""

# "--opt VALUE" or "--opt=VALUE"; sets $value and $shift_by.
take_value() {
  case "$1" in
    *=*)
      value="${1#*=}"
      shift_by=1
      ;;
    *)
      [ "$#" -ge 2 ] || usage_error "$1 needs a value"
      value="$2"
      shift_by=2
      ;;
  esac
  [ -n "$value" ] || usage_error "${1%%=*} needs a value"
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --dir | --dir=*)
      take_value "$@"
      dir="$value"
      ;;
    --version | --version=*)
      take_value "$@"
      version="$value"
      ;;
    --repo | --repo=*)
      take_value "$@"
      repo="$value"
      ;;
    --from | --from=*)
      take_value "$@"
      from="$value"
      ;;
    --base-url | --base-url=*)
      take_value "$@"
      base_url="$value"
      ;;
    --target | --target=*)
      take_value "$@"
      target="$value"
      ;;
    *) usage_error "unknown option \"$1\"" ;;
  esac
  shift "$shift_by"
done

if [ -z "$dir" ]; then
  [ -n "${HOME:-}" ] || die "HOME is not set: pass --dir DIR"
  dir="$HOME/.local/bin"
fi
if [ -n "$from" ] && { [ -n "$version" ] || [ -n "$base_url" ]; }; then
  usage_error "--from installs a local build: it takes no --version or --base-url"
fi

# The deno compile target triple of this machine.
detect_target() {
  os="$(uname -s)"
  arch="$(uname -m)"
  case "$os" in
    Linux) os_part="unknown-linux-gnu" ;;
    Darwin) os_part="apple-darwin" ;;
    *) die "unsupported operating system \"$os\": courier ships for Linux and macOS" ;;
  esac
  case "$arch" in
    x86_64 | amd64) arch_part="x86_64" ;;
    aarch64 | arm64) arch_part="aarch64" ;;
    *) die "unsupported CPU \"$arch\": courier ships for x86_64 and aarch64" ;;
  esac
  # An x86_64 shell under Rosetta on Apple silicon: the native binary is better.
  if [ "$os" = Darwin ] && [ "$arch_part" = x86_64 ] &&
    [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)" = 1 ]; then
    arch_part="aarch64"
  fi
  if [ "$os" = Linux ] && ldd --version 2>&1 | grep -qi musl; then
    warn "this looks like a musl system (Alpine): courier's Linux build needs glibc (apk add gcompat)"
  fi
  printf '%s-%s\n' "$arch_part" "$os_part"
}

# The SHA-256 of file $1, lowercase hex.
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
  else
    die "found none of sha256sum, shasum or openssl to verify the binary: not installing it unverified"
  fi
}

# The checksum that SHA256SUMS file $1 lists for file name $2 (empty if none).
listed_sha256() {
  awk -v name="$2" '$2 == name || $2 == "*" name { print tolower($1); exit }' "$1"
}

# Downloads URL $1 to file $2.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 2 -o "$2" "$1" || die "download failed: $1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" || die "download failed: $1"
  else
    die "need curl or wget to download courier"
  fi
}

workdir=""
partial=""
cleanup() {
  if [ -n "$partial" ]; then rm -f "$partial"; fi
  if [ -n "$workdir" ]; then rm -rf "$workdir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -n "$target" ] || target="$(detect_target)"
name="courier-$target"

if [ -n "$from" ]; then
  [ -d "$from" ] || die "--from $from: no such directory"
  sums="$from/SHA256SUMS"
  [ -f "$sums" ] || die "$sums not found: build with 'deno task compile' or 'deno task release'"
  # A release build names the target; 'deno task compile' builds plain "courier" for this machine.
  if [ ! -f "$from/$name" ] && [ -f "$from/courier" ] && [ -n "$(listed_sha256 "$sums" courier)" ]; then
    name="courier"
  fi
  source="$from/$name"
  [ -f "$source" ] || die "$from has no $name (nor a courier built for this machine)"
  origin="$from"
else
  if [ -z "$base_url" ]; then
    [ -n "$repo" ] ||
      usage_error "which GitHub repository? pass --repo OWNER/NAME or set COURIER_REPO"
    case "$version" in
      "") base_url="https://github.com/$repo/releases/latest/download" ;;
      v*) base_url="https://github.com/$repo/releases/download/$version" ;;
      *) base_url="https://github.com/$repo/releases/download/v$version" ;;
    esac
  fi
  base_url="${base_url%/}"
  workdir="$(mktemp -d 2>/dev/null || mktemp -d -t courier-install)"
  say "Downloading $name from $base_url"
  sums="$workdir/SHA256SUMS"
  fetch "$base_url/SHA256SUMS" "$sums"
  source="$workdir/$name"
  fetch "$base_url/$name" "$source"
  origin="$base_url"
fi

expected="$(listed_sha256 "$sums" "$name")"
[ -n "$expected" ] || die "SHA256SUMS from $origin lists no $name: not installing an unverified binary"
case "$expected" in
  *[!0-9a-f]*) die "SHA256SUMS from $origin has a malformed entry for $name" ;;
esac
[ "${#expected}" -eq 64 ] || die "SHA256SUMS from $origin has a malformed entry for $name"

# Verify what was fetched before touching the install directory...
actual="$(sha256 "$source")"
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $name from $origin (expected $expected, got $actual): not installed"
fi

mkdir -p "$dir" || die "cannot create $dir: choose another directory with --dir DIR"
[ -w "$dir" ] || die "$dir is not writable: choose another directory with --dir DIR"

# ...then copy it beside the destination, verify that very copy, and rename it
# into place: the old courier stays until the new one is complete and verified.
partial="$dir/.courier.install.$$"
cp "$source" "$partial" || die "cannot write $partial"
actual="$(sha256 "$partial")"
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $name (expected $expected, got $actual): not installed"
fi
chmod 755 "$partial"
mv -f "$partial" "$dir/courier" || die "cannot move the binary to $dir/courier"
partial=""

if ! installed="$("$dir/courier" --version 2>&1)"; then
  die "installed $dir/courier, but it does not run here: $installed"
fi
say "Installed $installed to $dir/courier (sha256 $actual)"

case ":${PATH:-}:" in
  *":$dir:"*) ;;
  *)
    say ""
    say "$dir is not on your PATH. Add it in your shell's rc file:"
    say "  bash/zsh:  export PATH=\"$dir:\$PATH\"    # ~/.bashrc or ~/.zshrc"
    say "  fish:      fish_add_path $dir"
    ;;
esac
say ""
say "Shell completions: courier completions --help"
