"""`usage-analytics bench`: the benchmark harness, on any project folder passed in (`--project-dir`).

run.py runs every measurement in one go; endpoints.py holds the parameter mix and reads the parameters' declared
defaults from the pipes; measure.py times calls and samples memory; ingest.py measures the Events API against chDB;
peers.py asks DuckDB and PostgreSQL the same questions; rawforms.py asks the roll-up readers' questions of the raw
tables; cache.py repeats dashboard reads against the result cache; report.py writes the Markdown, the plots and
BENCHMARKS.md's sections. Servers are started by the library's launcher (usage_analytics.local.launcher), as the
tests start them.
"""

from .endpoints import MIX

__all__ = ["MIX"]
