"""LRP rules, patch maps and the scoped context that applies them."""
