"""Page sections shared by several pages (Heatmap and Graph, Scaling and Evolution, Sweeps and Study).

Plumbing (session state, widgets, cached loaders, layout, navigation) stays in ui/; a section draws one
part of a page from typed engine results."""
