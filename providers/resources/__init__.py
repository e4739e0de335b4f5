"""The Pulumi dynamic providers, one module per resource, on a shared base."""
