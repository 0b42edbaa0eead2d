"""The test browser itself: it renders a real page, runs its JavaScript, and reports the page's
errors — so a page test that sees no errors means the page had none."""

from __future__ import annotations

from tests.support.browser import console_errors


def test_a_clean_page_renders_and_runs_its_script(browser, tmp_path):
    page = tmp_path / "ok.html"
    page.write_text("<html><body><p id='x'>before</p>"
                    "<script>document.getElementById('x').textContent = 'after';</script>"
                    "</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.find_element("id", "x").text == "after"
    assert console_errors(browser) == []


def test_a_script_error_and_a_missing_image_are_reported(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><img src='missing.png'>"
                    "<script>undefinedFunction();</script></body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    errors = console_errors(browser)
    assert any("undefinedFunction" in e for e in errors), errors
    assert any("missing.png" in e for e in errors), errors
