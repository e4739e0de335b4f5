"""The reconciler: Valohai API client (api/), sweep model (sweep/) and Pulumi dynamic providers (resources/)."""

from providers import legacy_paths

legacy_paths.install()
