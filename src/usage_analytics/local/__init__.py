"""An embedded Tinybird-compatible server on chDB: serves any Tinybird project folder, unchanged."""

from .app import build_app
from .project import Project, ProjectError, load_project
from .server import serve
from .workspace import BuildError, Workspace

__all__ = ["BuildError", "Project", "ProjectError", "Workspace", "build_app", "load_project", "serve"]
