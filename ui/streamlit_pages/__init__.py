"""The Streamlit app's pages, one script per page; common.py holds what they share."""
