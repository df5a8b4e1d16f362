"""Streamlit chat over the knowledge base (placeholder until the chat lands)."""
import streamlit as st

st.set_page_config(page_title="Knowledge base", page_icon="⚖️")
st.title("Knowledge base")
st.info("The index is built with `python -m ingest run`; the chat is being built.")
