"""HTTP layer: the app factory, thin controllers, schemas and the error table."""
