"""Streamlit-side code of the dashboard: state keys, bound widgets, cached loaders, renderers."""
