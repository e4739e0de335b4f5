"""The sweep as data: stack config, parameters from valohai.yaml, request payloads and content identity."""
