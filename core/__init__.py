"""RAG vs Fine-Tuning Studio: all logic. Never imports streamlit."""
