"""The Pulumi project's program: `stacks/__main__.py` runs `stacks.program.build_stack`."""
