"""One thin module per Cloud Function; each entry point hands the request to shared.api."""
