"""What both front ends show, in words, tables and pictures, built from the engine's data; no gradio or streamlit."""
