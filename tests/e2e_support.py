"""Helpers for reading `pulumi preview --json` in the e2e tests."""


def ops(preview: dict, kind: str) -> list[str]:
    """Names of the resources a preview plans `kind` for (create, delete, replace, update, same)."""
    return sorted(s["urn"].split("::")[-1] for s in preview["steps"] if s["op"] == kind)
