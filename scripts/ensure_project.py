"""Create the demo's Valohai project on the local backend if it does not exist yet (idempotent)."""

import argparse
import os

from providers.api.client import ValohaiClient
from providers.api.errors import ValohaiNotFound

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--host", required=True)
parser.add_argument("--project", required=True)
args = parser.parse_args()
api = ValohaiClient(args.host, os.environ["VALOHAI_API_TOKEN"])
try:
    project = api.resolve_project(args.project)
except ValohaiNotFound:
    project = api.create_project(args.project, "harbor sweep demo")
    print(f"created project {project['name']} ({project['id']})")
