"""The digit-classification web service."""
