"""The RFC 8288 Link header parser: several links, parameters, quoting, relation lists."""

from __future__ import annotations

import pytest

from catalog_refresher.sources.link_header import Link, next_link, parse_links


def test_several_links_with_their_parameters_are_read_in_order() -> None:
    """Each link keeps its target and its parameters, names lower-cased, values unquoted."""
    value = '<https://a.example/x?page=2>; rel="next"; title="Page 2", </x?page=9>;REL=last'
    assert parse_links(value) == [
        Link("https://a.example/x?page=2", (("rel", "next"), ("title", "Page 2"))),
        Link("/x?page=9", (("rel", "last"),)),
    ]


def test_commas_and_semicolons_inside_quotes_do_not_split_links() -> None:
    """A quoted title with ", <" and ";" stays one parameter; an escaped quote is text."""
    value = r'</a>; title="x, <b>; rel=\"next\""; rel="prev", </c>; rel="next"'
    links = parse_links(value)
    assert [link.target for link in links] == ["/a", "/c"]
    assert links[0].params == (("title", 'x, <b>; rel="next"'), ("rel", "prev"))
    assert next_link([value]) == "/c"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (['<https://h/p2>; rel="prefetch next"'], "https://h/p2"),  # several relation types
        (['<https://h/p2>; rel="NEXT"'], "https://h/p2"),  # compared case-insensitively
        (['<https://h/p1>; rel="prev"', '<https://h/p3>; rel="next"'], "https://h/p3"),
        (['<https://h/p1>; rel="prev"'], None),
        (["garbage, <https://h/p4>; rel=next"], "https://h/p4"),  # junk before a link skipped
        (['<https://h/p5>; rel="next", <https://h/p6>; rel="next"'], "https://h/p5"),
        (['<https://h/p7>; rel="nextish"'], None),
        (["<https://h/unclosed; rel=next"], None),
        ([], None),
    ],
)
def test_next_link_finds_the_first_link_with_relation_next(
    headers: list[str], expected: str | None
) -> None:
    """rel may list several types; the first link whose types include next wins."""
    assert next_link(headers) == expected


def test_only_the_first_rel_parameter_counts() -> None:
    """RFC 8288: a link's later rel parameters are ignored."""
    assert next_link(['</x>; rel="prev"; rel="next"']) is None
