# Source this file (`. scripts/env.sh`) to use the project's pulumi and venv by hand.
# Offline settings: local file backend inside the project, passphrase secrets, no update checks,
# no plugin downloads. `make setup` must have run once.
_vpac_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_vpac_version="$(sed -n 's/.*"pulumi==\([0-9.]*\)".*/\1/p' "$_vpac_root/pyproject.toml")"
_vpac_bin="$(cat "$_vpac_root/.pulumi/toolchain-dir" 2>/dev/null || true)"
export PATH="${_vpac_bin:+$_vpac_bin:}$_vpac_root/.venv/bin:$PATH"
export PULUMI_HOME="${PULUMI_HOME:-$_vpac_root/.pulumi/home}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$_vpac_root/.pulumi/state}"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-local-stacks-only}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_PYTHON_CMD="$_vpac_root/.venv/bin/python"
export PULUMI_VERSION_PINNED="$_vpac_version"
unset _vpac_root _vpac_version _vpac_bin
