"""The static HTML page of the contract: current, complete, and safe to open."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from aidmesh_contracts import EVENT_TYPES
from aidmesh_contracts.asyncapi import HTML_PATH, load
from aidmesh_contracts.asyncapi_html import render_html
from aidmesh_contracts.catalogue import CATALOGUE


@pytest.fixture(scope="module")
def page() -> str:
    return HTML_PATH.read_text(encoding="utf-8")


def test_the_committed_page_is_rendered_from_the_committed_document(page: str) -> None:
    assert render_html(load()) == page


def test_the_page_fetches_nothing(page: str) -> None:
    assert re.search(r"<(script|link|img|iframe)\b", page) is None
    assert "http://" not in page and "https://" not in page


def test_the_page_is_well_formed_html(page: str) -> None:
    class Checker(HTMLParser):
        VOID = {"meta", "br"}

        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in self.VOID:
                self.open.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.open.pop() == tag

    checker = Checker()
    checker.feed(page)

    assert checker.open == []


@pytest.mark.parametrize("name", [n for t in CATALOGUE for n in (t.name, t.dlq)])
def test_the_page_names_every_topic_and_dead_letter_topic(page: str, name: str) -> None:
    assert f"<code>{name}</code>" in page


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_the_page_shows_every_message_with_its_payload_fields_and_headers(
    page: str, event_type: str
) -> None:
    model = EVENT_TYPES[event_type]
    start = page.index(f'<h2 id="{model.__name__.lower()}">')
    section = page[start : page.index("<h2", start + 1)] if "<h2" in page[start + 1 :] else page

    assert f"<code>{event_type}</code>" in section
    for field in model.model_fields:
        assert f"<code>{field}</code>" in section
    for header in ("ce_id", "ce_type", "ce_subject", "ce_correlationid"):
        assert f"<code>{header}</code>" in section
    assert "<h3>Example:" in section


def test_nested_fields_are_listed_with_their_path(page: str) -> None:
    assert "<code>location.adm1_pcode</code>" in page
    assert "<code>details.damage_level</code>" in page
    assert "when kind = shelter" in page


def test_text_from_the_document_is_escaped() -> None:
    document = load()
    document["info"]["description"] = "<script>alert(1)</script> and `<b>` **bold**"

    html = render_html(document)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>&lt;b&gt;</code>" in html and "<b>bold</b>" in html
