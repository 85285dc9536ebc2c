"""Cross-layer attribution graphs: edges, pruning, metrics, export."""
