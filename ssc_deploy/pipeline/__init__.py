"""Orchestration across the stages: the quickstart (train -> export -> bench -> report) and its
training-time plan. Each stage lives in its own package (``train``, ``export``, ``runtime_bench``);
this one only strings them together.
"""
