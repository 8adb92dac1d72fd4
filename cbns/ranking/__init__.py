"""Ranking items for queries, shared by evaluation and serving: the exact top-K, membership tests
on sparse user x item rows (seen items, held-out items), and a faiss item index with filtered
search over it. Imports neither the evaluation nor the serving package."""
