"""An embedded Tinybird-compatible server on chDB: serves any Tinybird project folder, unchanged.

The names below load on first use, so importing a light module of the package (`local.settings`, as the CLI
does for its defaults) does not load chDB.
"""

from importlib import import_module

_EXPORTS = {
    "build_app": ".http",
    "Project": ".project",
    "ProjectError": ".project",
    "load_project": ".project",
    "serve": ".server",
    "BuildError": ".build",
    "Workspace": ".workspace",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
