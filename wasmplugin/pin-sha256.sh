#!/usr/bin/env bash
# Sets the `sha256:` of the WasmPlugin and TrafficExtension manifests, which
# ship with a placeholder (Istio refuses a module whose checksum differs, and
# with FAIL_OPEN the filter is then silently skipped).
#
#   wasmplugin/pin-sha256.sh file target/wasm/wasm32-wasip1/release/canary_router.wasm
#       wasmplugin-file.yaml, trafficextension-file.yaml: the module's sha256
#   wasmplugin/pin-sha256.sh oci sha256:4f0c...   (or the 64 hex digits alone)
#       wasmplugin.yaml, wasmplugin-configmap.yaml and their trafficextension
#       variants: the digest of the image manifest, as printed by
#       `docker push` / `oras push` (or `crane digest <ref>`)
#
# WASMPLUGIN_DIR overrides the directory of the manifests (default: this one).
set -euo pipefail
dir="${WASMPLUGIN_DIR:-$(cd "$(dirname "$0")" && pwd)}"
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 2 ] || usage
case "$1" in
  file)
    [ -f "$2" ] || { echo "no such module: $2" >&2; exit 1; }
    sum="$(sha256sum "$2" | cut -d' ' -f1)"
    files=("$dir/wasmplugin-file.yaml" "$dir/trafficextension-file.yaml")
    ;;
  oci)
    sum="${2#sha256:}"
    files=("$dir/wasmplugin.yaml" "$dir/wasmplugin-configmap.yaml"
           "$dir/trafficextension.yaml" "$dir/trafficextension-configmap.yaml")
    ;;
  *) usage ;;
esac
[[ "$sum" =~ ^[a-f0-9]{64}$ ]] || { echo "not a sha256 (64 lower-case hex digits): $sum" >&2; exit 1; }
for f in "${files[@]}"; do
  # A WasmPlugin's `spec.sha256` (two spaces in), a TrafficExtension's
  # `spec.wasm.sha256` (four). Quoted: an all-digit checksum would
  # otherwise be a YAML integer.
  grep -Eq '^(  |    )sha256: "?[a-f0-9]{64}"?$' "$f" || { echo "$f: no 'sha256:' line to set" >&2; exit 1; }
  sed -E -i "s/^(  |    )sha256: \"?[a-f0-9]{64}\"?$/\1sha256: \"$sum\"/" "$f"
  echo "$f: sha256 $sum"
done
