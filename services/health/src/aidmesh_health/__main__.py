from aidmesh_runtime.service import run

from .app import build_app
from .settings import HealthSettings


def main() -> None:
    settings = HealthSettings()
    run(build_app(settings), settings)


if __name__ == "__main__":
    main()
