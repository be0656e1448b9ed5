"""One module per CLI command; each only parses arguments and renders results."""
