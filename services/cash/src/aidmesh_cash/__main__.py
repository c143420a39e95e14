from aidmesh_runtime.service import serve

from .app import build_app
from .settings import CashSettings

if __name__ == "__main__":
    serve(build_app, CashSettings)
