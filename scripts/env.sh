# Source this file (`. scripts/env.sh`) to use the project's pulumi and venv by hand.
# Offline settings: local file backend inside the project, passphrase secrets, no update checks,
# no plugin downloads. They are defined once, in toolchain/environment.py; this only exports them.
# PULUMI_CONFIG_PASSPHRASE is set to the public default `local-stacks-only` only when it is unset: enough
# for the `local` stack, which holds no secret. The program refuses any stack secret encrypted with it:
# export a passphrase of your own before sourcing this for stacks that store a token (README, "Secrets").
# `make setup` must have run once (it makes the venv this needs).
_vpac_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
if _vpac_env="$(cd "$_vpac_root" && .venv/bin/python -m toolchain.environment --shell)"; then
  eval "$_vpac_env"
  unset _vpac_root _vpac_env
else
  echo "scripts/env.sh: could not read the Pulumi environment from $_vpac_root/.venv: run \`make setup\` first" >&2
  unset _vpac_root _vpac_env
  return 1
fi
