"""Activation clusters (Zhang, Gu, Yao): token-mean representations and agglomerative clusters
(`clustering`), and their causal test by ablation (`ablation`)."""
