"""The server's defaults and limits, each written once: the CLI's flags, the Workspace and the routes read them.

Every request is bounded (DESIGN.md, security): bodies before and after inflating, line length, parameter size,
query time, memory and result size, cache bytes. Where Tinybird documents a limit, its value is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    # durability and backpressure
    fsync: bool = False  # fsync every inserted part and its directory (survive power loss)
    max_pending_ingests: int = 16  # Events API requests per datasource, running or waiting, before a 429

    # request bodies: Tinybird's Events API takes up to 10 MB per request (Free plan; 413 beyond)
    max_events_body: int = 10 * MiB  # per /v0/events request, checked on the bytes sent and on the inflated bytes
    # a Data Sources API file (inflated), streamed in bounded memory: Tinybird's "Max file size (uncompressed)" of
    # the Build plan is 10 GB (https://www.tinybird.co/docs/support/limits#ingestion-limits)
    max_import_bytes: int = 10 * 1024 * MiB
    max_line_bytes: int = 10 * MiB  # one NDJSON line or CSV row: longer ones are quarantined, never buffered whole
    max_url_bytes: int = 8 * 1024  # path and query string of a request: 414 beyond, as Tinybird answers
    max_form_body: int = 1 * MiB  # a JSON or form body of pipe parameters, or a /v0/sql query
    max_param_bytes: int = 64 * 1024  # one parameter value, from the URL or a POST body
    max_header_bytes: int = 64 * 1024  # all request headers together (a JWT included): 431 beyond

    # url= downloads of the Data Sources API, bounded in bytes by max_import_bytes
    fetch_timeout: float = 30.0  # seconds to connect, and between two reads
    max_fetch_seconds: float = 600.0  # seconds for the whole download

    # queries: Tinybird stops a query at 10 s (TIMEOUT_EXCEEDED) and bounds its memory (MEMORY_LIMIT_EXCEEDED)
    max_execution_time: float = 10.0  # seconds, every query a request runs
    max_memory_usage: int = 4096 * MiB  # bytes per query
    max_result_bytes: int = 100 * MiB  # bytes of one answer (endpoints and /v0/sql)

    # copy pipes: a copy's SELECT has every limit of a read but this time, since it may scan much more than an
    # endpoint answers (our choice: Tinybird's copy time limits depend on the plan)
    copy_max_execution_time: float = 600.0  # seconds
    copy_schedule_tick: float = 1.0  # seconds between the scheduler's looks at the clock
    copy_schedules_at_start: bool = False  # run every scheduled copy once at start too (what the tests use)

    # caches, bounded in bytes
    render_cache_bytes: int = 32 * MiB  # rendered SQL of endpoints, all pipes together
    result_cache_bytes: int = 64 * MiB  # answers kept between writes (resultcache.py), all workspaces together

    # exposure
    expose_tokens: bool | None = None  # GET /tokens: None = on a loopback address, to requests sent to a loopback name


DEFAULTS = ServerSettings()
