"""Experiments: named profiles, the one matrix of runs, running a run and recording it,
stored notebooks through papermill, and the GPU script that runs the matrix against a clock."""
