"""Explanation clusters (Ben Yaakov, Zafar, Shechter): clusterings of explanation embeddings
(`clustering`) and their topic words (`topics`)."""
