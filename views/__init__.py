"""Streamlit pages, one per file (app.py is the router); common.py is what they share."""
