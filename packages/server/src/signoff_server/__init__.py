"""The signoff platform server."""
