"""`python -m aidmesh_health`: run the service; `python -m aidmesh_health new-key`: print a
new clinical key (base64 of 32 random bytes)."""

import sys

from aidmesh_runtime.service import serve

from .app import build_app
from .clinical import new_key
from .settings import HealthSettings

if __name__ == "__main__":
    if sys.argv[1:] == ["new-key"]:
        print(new_key())
    else:
        serve(build_app, HealthSettings)
