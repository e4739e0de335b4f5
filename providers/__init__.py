"""The reconciler: Valohai API client (api/), sweep model (sweep/) and Pulumi dynamic providers (resources/)."""
