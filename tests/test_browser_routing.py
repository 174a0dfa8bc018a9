"""A deep link opened as the first request after a server start still goes through app.py's navigation."""
import pytest

from tests.e2e import chromium, streamlit_server, wait_for_text

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("path", "title"), [("ask", "Ask your documents"), ("training_data", "Training data")])
def test_first_request_to_a_deep_link_uses_the_app_navigation(tmp_path, path, title):
    with streamlit_server(tmp_path) as url, chromium() as driver:
        driver.get(f"{url}/{path}")
        wait_for_text(driver, title)
        wait_for_text(driver, "Workspace:")  # the shared sidebar only app.py renders
        nav = driver.find_element("css selector", '[data-testid="stSidebarNav"]').text
        assert "Decide" in nav and "Documents" in nav
        assert "app" not in nav.split()  # the legacy router lists the main script as 'app'
