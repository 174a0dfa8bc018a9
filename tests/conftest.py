import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: uses the real embedded models")
    config.addinivalue_line("markers", "browser: starts a Streamlit server and drives headless Chromium")
