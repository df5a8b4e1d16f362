"""Knowledge base: store, retrieval, cited answers and exports."""
