"""Side-by-side benchmarks of oqron against Celery, RQ, Dramatiq and Huey (DESIGN.md §10).

``python -m benchmarks`` runs everything; see ``benchmarks/README.md``. The orchestrator runs in
the project venv; each (framework, workload) step runs in a subprocess of that framework's venv
(``benchmarks.run_one``), so the peers are never dependencies of oqron.
"""
