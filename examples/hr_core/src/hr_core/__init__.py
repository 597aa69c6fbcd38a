"""The hr_core example application."""
