"""The field_inspector example application."""
