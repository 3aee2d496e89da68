"""Helpers shared by tests/unit, tests/integration, the benchmarks and the demo.

Importable as `support.<module>` because tests/ is on the path: pytest puts it there
(`pythonpath` in pyproject.toml), the scripts through PYTHONPATH. Fixtures and pytest hooks
are not here but in tests/conftest.py.
"""
