"""The Valohai REST API as the providers use it: client, errors, statuses, waiting, credentials."""
