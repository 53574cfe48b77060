"""Placeholder until the UI issue lands: the Streamlit app calls the library only."""

import streamlit as st

st.title("CalmCall Coach")
st.write("Practice answers about angry callers; the full UI is coming.")
