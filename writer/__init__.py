"""AI writing assistant core: pure Python, never imports streamlit."""
