"""The leave_portal example application."""
