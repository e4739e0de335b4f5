"""The Pulumi toolchain around the providers: the offline environment, the one way to run `pulumi`, the
Python language host the CLI starts, and the `drift-check` command."""
