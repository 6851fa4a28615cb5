"""The tests are packages (tests.data, tests.evaluation, …) so that files in different folders may
share a basename, as the modules they test do (data/report.py, evaluation/report.py)."""
