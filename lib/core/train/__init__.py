"""Training: the loop with exact resume (`loop`) and the CUDA-graph step (`graphed_step`)."""
