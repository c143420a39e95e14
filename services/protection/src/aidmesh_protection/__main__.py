from aidmesh_runtime.service import run

from .app import build_app
from .settings import ProtectionSettings


def main() -> None:
    settings = ProtectionSettings()
    run(build_app(settings), settings)


if __name__ == "__main__":
    main()
