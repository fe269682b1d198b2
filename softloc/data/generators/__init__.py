"""Built-in data generators: synthetic datasets written in the generic layout."""
