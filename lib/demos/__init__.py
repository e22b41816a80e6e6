"""Small worked examples the chapters compute: single-query attention (Part 1), the
key-value lookup task and the causality checks (Part 3)."""
