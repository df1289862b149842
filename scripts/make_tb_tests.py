"""Write tests/<endpoint>.yaml (Tinybird's `tb test` format) from the embedded server's answers.

Usage: .venv/bin/python scripts/make_tb_tests.py
The cases are tests/cases.py's valid parameter sets over the committed fixtures; pytest checks every
expected_result against the oracle, and `tb test run` runs the same files on Tinybird Local.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import cases  # noqa: E402

from usage_analytics.local.launcher import ServerProcess  # noqa: E402


class _Literal(str):
    pass


yaml.add_representer(_Literal, lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|"))


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        process = ServerProcess(ROOT, Path(data) / "data", log_path=Path(data) / "server.log")
        server = process.start(timeout=600)
        try:
            for endpoint, items in cases.valid_cases(cases.load_rows()).items():
                tests = []
                for case, params in items:
                    response = server.get(f"/v0/pipes/{endpoint}.ndjson", params, timeout=60)
                    described = ", ".join(f"{k}={v}" for k, v in params.items()) or "default parameters"
                    tests.append(
                        {
                            "name": case,
                            "description": f"{endpoint} with {described}",
                            "parameters": urlencode(params),
                            "expected_result": _Literal(response.text) if response.text else "",
                            "expected_http_status": 200,
                        }
                    )
                path = ROOT / "tests" / f"{endpoint}.yaml"
                path.write_text(yaml.dump(tests, sort_keys=False, allow_unicode=True, width=1000))
                print(f"{path.relative_to(ROOT)}: {len(tests)} cases")
        finally:
            process.stop()


if __name__ == "__main__":
    main()
